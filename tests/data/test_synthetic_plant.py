"""The planted answer of the synthetic CXR cohort (docs/synthetic.md, "The plant"): mimics of cardiomegaly
and pleural effusion, a graded and noisier edema label, and a film that shows every label more clearly
than the ECG."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from xmodal.data.synthetic import Knobs, cohort, cxr_image, ecg_signal
from xmodal.data.synthetic.latent import CXR_LATENTS, CXR_LABEL_OF, DEFAULT_MIMIC_SHARE
from xmodal.errors import ConfigError

LABEL_COLUMN = {label: col for col, label in cohort.MODELLED.items()}


@pytest.fixture(scope="module")
def plan() -> list[cohort.CxrSubject]:
    return cohort.plan_cxr(4000, seed=1, knobs=Knobs())


def study_labels(subjects, label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(latent, 0/1 label, mimic flag) of every study whose CheXpert value for ``label`` is 0 or 1."""
    j = CXR_LATENTS.index(CXR_LABEL_OF[label])
    rows = [(st.latent[j], st.chexpert[LABEL_COLUMN[label]], label in s.mimics)
            for s in subjects for st in s.studies if st.chexpert[LABEL_COLUMN[label]] in (0.0, 1.0)]
    z, y, m = (np.array(v) for v in zip(*rows))
    return z, y, m.astype(bool)


@pytest.mark.parametrize("label", sorted(DEFAULT_MIMIC_SHARE))
def test_each_pathology_has_its_share_of_mimics_and_they_are_negatives(plan, label):
    share = np.mean([label in s.mimics for s in plan])
    assert share == pytest.approx(DEFAULT_MIMIC_SHARE[label], abs=0.015)
    z, y, mimic = study_labels(plan, label)
    assert y[mimic].mean() < 0.5 * y.mean()  # mostly negative: hard negatives, not hidden positives
    assert y[~mimic].mean() > y.mean()


def test_edema_has_no_mimics_and_the_knob_sets_the_share():
    subjects = cohort.plan_cxr(1000, seed=2, knobs=Knobs(mimic_share={"cardiomegaly": 0.3, "pleural_effusion": 0.0}))
    assert np.mean(["cardiomegaly" in s.mimics for s in subjects]) == pytest.approx(0.3, abs=0.04)
    assert not any("pleural_effusion" in s.mimics or "edema" in s.mimics for s in subjects)
    with pytest.raises(ConfigError, match="mimic_share for unknown label"):
        Knobs(mimic_share={"edema": 0.1}).validated()
    with pytest.raises(ConfigError, match="1 - prevalence"):
        Knobs(mimic_share={"cardiomegaly": 0.9}).validated()


def test_edema_labels_are_graded_and_noisier(plan):
    """Cardiomegaly and effusion labels follow the latent sharply; edema's loosely (shallow link, more flips)."""
    auc = {label: roc_auc_score(*study_labels(plan, label)[1::-1]) for label in LABEL_COLUMN}
    assert auc["cardiomegaly"] > 0.9 and auc["pleural_effusion"] > 0.9, auc
    assert auc["edema"] < min(auc["cardiomegaly"], auc["pleural_effusion"]) - 0.08, auc
    assert Knobs().label_noise_of("edema") > Knobs().label_noise_of("cardiomegaly")


def test_a_fat_pad_widens_the_silhouette_at_a_lower_density_than_an_enlarged_heart():
    hab = cxr_image.Habitus(1.0, False, 0.0)
    normal = cxr_image.findings(np.zeros(3), 1.0, hab, np.random.default_rng(0))
    big = cxr_image.findings(np.array([2.5, 0.0, 0.0]), 1.0, hab, np.random.default_rng(0))

    def film(f, h):
        return cxr_image.render_cxr(f, "PA", (128, 128), np.random.default_rng(1), h).astype(float)

    base = film(normal, hab)
    pad = film(normal, dataclasses.replace(hab, fat_pad=0.07)) - base
    heart = film(big, hab) - base
    assert pad.max() > 150  # visible (12-bit values; quantum noise is shared)
    region = pad > 0.5 * pad.max()
    assert heart[region].mean() > 1.5 * pad[region].mean()  # the heart is denser where both widen


def test_a_raised_hemidiaphragm_lifts_one_lung_base():
    hab = cxr_image.Habitus(1.0, False, 0.0)
    f = cxr_image.findings(np.zeros(3), 1.0, hab, np.random.default_rng(0))
    base = cxr_image.render_cxr(f, "PA", (128, 128), np.random.default_rng(1), hab).astype(float)
    up = cxr_image.render_cxr(f, "PA", (128, 128), np.random.default_rng(1),
                              dataclasses.replace(hab, raised_diaphragm=0.12, raised_right=True)).astype(float)
    diff = up - base
    right, left = diff[:, :64], diff[:, 64:]  # PA: the patient's right is the image left
    assert right.max() > 300 and np.abs(left).max() < 0.2 * right.max()


def test_ecg_mimics_show_voltage_not_width():
    p = ecg_signal.EcgParams()
    lvh = ecg_signal.mimic_effects(p, ("cardiomegaly",))
    assert lvh.qrs_gain > p.qrs_gain and lvh.frontal_deg < p.frontal_deg
    assert (lvh.qrs_width, lvh.t_gain) == (p.qrs_width, p.t_gain)  # an enlarged heart widens QRS, flattens T
    assert ecg_signal.mimic_effects(p, ("pleural_effusion",)).qrs_gain < p.qrs_gain
    assert ecg_signal.mimic_effects(p, ()) == p


def test_the_film_shows_each_label_more_clearly_than_the_ecg(plan):
    """What each modality draws from the latent (the film's findings; the ECG parameters a per-lead z-scored
    model can see: T/QRS ratio, axis, QRS width, rate) predicts the label; the film better, by at least
    0.10 AUROC where the label is clear-cut and by less for graded, noisy edema (both capped by its labels)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    rng = np.random.default_rng(0)
    rows = []
    for s in plan[:2500]:
        for st in s.studies:
            p = ecg_signal.cxr_effects(ecg_signal.recording_params(s.ecg_base, rng), st.latent, 1.0)
            f = st.findings
            film = [f.ctr / (1.08 if st.kind.startswith("ap") else 1.0), max(f.effusion_left, f.effusion_right), f.edema]
            ecg = [np.log(p.t_gain / p.qrs_gain), p.frontal_deg, np.log(p.qrs_width), p.hr_bpm]
            rows.append((film, ecg, st.chexpert))

    def auroc(label: str, i: int) -> float:
        keep = [r for r in rows if r[2][LABEL_COLUMN[label]] in (0.0, 1.0)]
        y = np.array([r[2][LABEL_COLUMN[label]] for r in keep])
        x = np.array([r[i] for r in keep])
        x = (x - x.mean(0)) / (x.std(0) + 1e-9)
        return roc_auc_score(y, cross_val_predict(LogisticRegression(max_iter=2000), x, y, cv=5,
                                                  method="predict_proba")[:, 1])

    gap = {label: (auroc(label, 0), auroc(label, 1)) for label in LABEL_COLUMN}
    for label in ("cardiomegaly", "pleural_effusion"):
        assert gap[label][0] > 0.88 and gap[label][0] > gap[label][1] + 0.10, gap
    assert 0.6 < gap["edema"][1] < gap["edema"][0] < gap["cardiomegaly"][0], gap
