"""The MIMIC-like synthetic cohort: who has which ECGs and chest films, when, and what they show.

Planning (one process, cheap) decides every subject, visit, time, id and label; rendering (many
processes, costly) draws and writes the files of one subject from the plan and a random stream
seeded by ``(seed, subject index, item)``, so the bytes never depend on the number of workers.

Layout written under the cohort root, as PhysioNet ships the two databases::

    mimic-iv-ecg/record_list.csv
    mimic-iv-ecg/files/p1000/p10000032/s40689238/40689238.{hea,dat}
    mimic-cxr/mimic-cxr-2.0.0-metadata.csv
    mimic-cxr/mimic-cxr-2.0.0-chexpert.csv
    mimic-cxr/files/p10/p10000032/s50414267/<dicom_id>.dcm

What exercises the manifest builder: lateral films next to frontal ones (PA + LATERAL, AP + LL),
repeat AP films, several studies and ECGs per subject, ECGs 26–40 h from the film (outside a
24 h window), films without any ECG, unrelated ECGs weeks away, uncertain (-1) and blank labels.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from xmodal.data.synthetic import cxr_image, ecg_signal, writers
from xmodal.data.synthetic.latent import (CXR_LABEL_OF, CXR_LATENTS, CXR_LINK_SLOPE, Knobs, cxr_mimics,
                                          cxr_subject_latents, cxr_visit_latent, draw_label, intercept_for, sigmoid)

ECG_DIR, CXR_DIR = "mimic-iv-ecg", "mimic-cxr"
CHEXPERT_COLUMNS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum",
                    "Fracture", "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other",
                    "Pneumonia", "Pneumothorax", "Support Devices")
MODELLED = {"Cardiomegaly": "cardiomegaly", "Pleural Effusion": "pleural_effusion", "Edema": "edema"}
# study type -> (probability, views, procedure description)
STUDY_TYPES = {
    "pa_lat": (0.45, ("PA", "LATERAL"), "CHEST (PA AND LAT)"),
    "ap": (0.36, ("AP",), "CHEST (PORTABLE AP)"),
    "ap_repeat": (0.04, ("AP", "AP"), "CHEST (PORTABLE AP)"),
    "pa": (0.05, ("PA",), "CHEST (SINGLE VIEW)"),
    "ap_ll": (0.10, ("AP", "LL"), "CHEST (PA AND LAT)"),
}
VIEW_MEANING = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral", "LL": "left lateral"}
ECG_FS, ECG_SECONDS = 500, 10.0


@dataclass
class CxrFilm:
    dicom_id: str
    view: str


@dataclass
class CxrStudy:
    study_id: str
    time: dt.datetime
    latent: np.ndarray  # heart, fluid, effusion at this visit
    kind: str
    orientation: str
    findings: cxr_image.CxrFindings | None = None
    films: list[CxrFilm] = field(default_factory=list)
    chexpert: dict[str, float] = field(default_factory=dict)


@dataclass
class EcgPlan:
    study_id: str
    time: dt.datetime
    latent: np.ndarray


@dataclass
class CxrSubject:
    index: int
    subject_id: str
    female: bool
    age: float
    habitus: cxr_image.Habitus
    ecg_base: ecg_signal.EcgParams
    mimics: tuple[str, ...] = ()  # labels this subject mimics (shows part of the pattern without the finding)
    studies: list[CxrStudy] = field(default_factory=list)
    ecgs: list[EcgPlan] = field(default_factory=list)


def dicom_id(seed: int, subject_id: str, study_id: str, k: int) -> str:
    """MIMIC-CXR style id: a SHA-1 in five dash-separated groups of eight hex digits."""
    h = hashlib.sha1(f"{seed}:{subject_id}:{study_id}:{k}".encode()).hexdigest()
    return "-".join(h[i:i + 8] for i in range(0, 40, 8))


def _unique_ids(rng: np.random.Generator, n: int, first: int, span: int = 10_000_000) -> list[str]:
    """``n`` distinct 8-digit ids in ``[first, first + span)``."""
    return [str(first + int(v)) for v in rng.choice(span, n, replace=False)]


def plan_cxr(n: int, seed: int, knobs: Knobs) -> list[CxrSubject]:
    """Every subject, visit, id, time and label of a MIMIC-like cohort of ``n`` subjects."""
    rng = np.random.default_rng([seed, 11])
    ids = sorted(_unique_ids(rng, n, 10_000_000, 9_999_000))
    base = cxr_subject_latents(rng, n)
    mimic = cxr_mimics(base, rng, knobs)
    subjects: list[CxrSubject] = []
    for i, sid in enumerate(ids):
        female, age = bool(rng.random() < 0.47), float(rng.uniform(25, 90))
        mimics = tuple(label for label, flags in mimic.items() if flags[i])
        subj = CxrSubject(i, sid, female, age, cxr_image.habitus(rng, female, mimics),
                          ecg_signal.mimic_effects(ecg_signal.base_params(rng, male=not female, age=age), mimics),
                          mimics)
        start = dt.datetime(int(rng.integers(2110, 2200)), 1, 1) + dt.timedelta(days=float(rng.uniform(0, 365)))
        t = start
        for k in range(int(rng.choice([1, 2, 3, 4], p=[0.55, 0.25, 0.12, 0.08]))):
            if k:
                t += dt.timedelta(days=float(rng.uniform(0.5, 4) if rng.random() < 0.3 else rng.uniform(30, 1500)))
            kinds = list(STUDY_TYPES)
            kind = str(rng.choice(kinds, p=[STUDY_TYPES[s][0] for s in kinds]))
            orient = "Erect" if kind in ("pa_lat", "pa") or rng.random() < 0.3 else "Recumbent"
            latent = cxr_visit_latent(base[i], rng)
            study = CxrStudy("", t.replace(microsecond=int(rng.integers(0, 1000)) * 1000), latent, kind, orient,
                             cxr_image.findings(latent, knobs.image_strength, subj.habitus, rng))
            subj.studies.append(study)
            _plan_visit_ecgs(subj, study, base[i], rng)
        for _ in range(int(rng.poisson(0.4))):  # unrelated ECGs, weeks away from any film
            when = subj.studies[-1].time + dt.timedelta(days=float(rng.uniform(10, 400)) * rng.choice([-1, 1]))
            subj.ecgs.append(EcgPlan("", when, cxr_visit_latent(base[i], rng)))
        subjects.append(subj)

    studies = [s for subj in subjects for s in subj.studies]
    ecgs = [e for subj in subjects for e in subj.ecgs]
    for s, sid in zip(studies, _unique_ids(rng, len(studies), 50_000_000)):
        s.study_id = sid
    for e, sid in zip(ecgs, _unique_ids(rng, len(ecgs), 40_000_000)):
        e.study_id = sid
        e.time = e.time.replace(second=0, microsecond=0)  # MIMIC-IV-ECG times are to the minute
    for subj in subjects:
        for s in subj.studies:
            views = STUDY_TYPES[s.kind][1]
            s.films = [CxrFilm(dicom_id(seed, subj.subject_id, s.study_id, k), v) for k, v in enumerate(views)]
    _draw_chexpert(studies, rng, knobs)
    return subjects


def _plan_visit_ecgs(subj: CxrSubject, study: CxrStudy, baseline: np.ndarray, rng: np.random.Generator) -> None:
    """ECGs around one film: mostly within hours, sometimes 26–40 h away, sometimes none."""
    u = rng.random()
    hours: list[float] = []
    if u < 0.72:
        hours.append(float(np.clip(rng.normal(0, 4), -20, 20)))
        if rng.random() < 0.2:
            hours.append(float(np.clip(hours[0] + rng.uniform(1, 12), -22, 22)))
    elif u < 0.85:
        hours.append(float(rng.uniform(26, 40) * rng.choice([-1, 1])))
    for h in hours:
        drift = 0.1 if abs(h) < 24 else 0.3
        latent = np.sqrt(1 - drift**2) * study.latent + drift * cxr_visit_latent(baseline, rng)
        subj.ecgs.append(EcgPlan("", study.time + dt.timedelta(hours=h), latent))


def _draw_chexpert(studies: list[CxrStudy], rng: np.random.Generator, knobs: Knobs) -> None:
    """CheXpert-style labels: 1 / 0 / -1 (uncertain, mostly near the boundary) / NaN (blank)."""
    z = np.array([s.latent for s in studies]).reshape(-1, len(CXR_LATENTS))
    values: dict[str, np.ndarray] = {}
    for col, label in MODELLED.items():
        j = CXR_LATENTS.index(CXR_LABEL_OF[label])
        slope = CXR_LINK_SLOPE[label]
        p = sigmoid(intercept_for(knobs.prevalence_of(label), slope) + slope * z[:, j])
        y = draw_label(p, rng, knobs.label_noise_of(label))
        w = 4 * p * (1 - p)
        unsure = rng.random(len(p)) < np.clip(knobs.uncertain_rate * w / max(w.mean(), 1e-9), 0, 0.9)
        blank = rng.random(len(p)) < knobs.blank_rate
        values[col] = np.where(blank, np.nan, np.where(unsure, -1.0, y))
    n = len(studies)
    portable = np.array([s.kind.startswith("ap") for s in studies])
    any_pos = np.zeros(n, bool)
    for col, v in values.items():
        any_pos |= v == 1.0

    def sparse(p_pos: np.ndarray | float, p_neg: float = 0.05, p_unc: float = 0.02) -> np.ndarray:
        u = rng.random(n)
        p_pos = np.broadcast_to(p_pos, (n,))
        return np.where(u < p_pos, 1.0, np.where(u < p_pos + p_unc, -1.0, np.where(u < p_pos + p_unc + p_neg, 0.0, np.nan)))

    eff, ede, card = (values[c] == 1.0 for c in ("Pleural Effusion", "Edema", "Cardiomegaly"))
    values["Atelectasis"] = sparse(0.12 + 0.15 * eff)
    values["Lung Opacity"] = sparse(0.10 + 0.3 * ede)
    values["Consolidation"] = sparse(0.04)
    values["Pneumonia"] = sparse(0.05, 0.1, 0.06)
    values["Enlarged Cardiomediastinum"] = sparse(0.02 + 0.15 * card, 0.02, 0.06)
    values["Pneumothorax"] = sparse(0.02, 0.2, 0.0)
    values["Fracture"] = sparse(0.01, 0.0, 0.0)
    values["Lung Lesion"] = sparse(0.02, 0.0, 0.01)
    values["Pleural Other"] = sparse(0.01, 0.0, 0.0)
    values["Support Devices"] = sparse(0.05 + 0.45 * portable, 0.0, 0.0)
    for col in ("Atelectasis", "Lung Opacity", "Consolidation", "Pneumonia"):
        any_pos |= values[col] == 1.0
    values["No Finding"] = np.where(~any_pos & (rng.random(n) < 0.8), 1.0, np.nan)
    for k, s in enumerate(studies):
        s.chexpert = {c: float(values[c][k]) for c in CHEXPERT_COLUMNS}


def render_cxr_subject(subj: CxrSubject, root: Path, seed: int, knobs: Knobs) -> None:
    """Draw and write every ECG and film of one subject (deterministic in ``seed`` and the plan)."""
    sid = subj.subject_id
    for k, e in enumerate(subj.ecgs):
        rng = np.random.default_rng([seed, 1, subj.index, k])
        p = ecg_signal.cxr_effects(ecg_signal.recording_params(subj.ecg_base, rng), e.latent, knobs.ecg_strength)
        sig = ecg_signal.simulate_ecg(p, rng, fs=ECG_FS, seconds=ECG_SECONDS, leads=ecg_signal.MIMIC_LEAD_ORDER)
        folder = root / ECG_DIR / "files" / f"p{sid[:4]}" / f"p{sid}" / f"s{e.study_id}"
        writers.write_wfdb(folder, e.study_id, sig, ecg_signal.MIMIC_LEAD_ORDER, fs=ECG_FS, when=e.time)
    rows, cols = knobs.cxr_shape
    for j, s in enumerate(subj.studies):
        for k, film in enumerate(s.films):
            rng = np.random.default_rng([seed, 2, subj.index, j, k])
            pixels = cxr_image.render_cxr(s.findings, film.view, (rows, cols), rng, subj.habitus)
            path = root / CXR_DIR / "files" / f"p{sid[:2]}" / f"p{sid}" / f"s{s.study_id}" / f"{film.dicom_id}.dcm"
            writers.write_cxr(path, pixels, seed=seed, subject_id=sid, study_id=s.study_id, dicom_id=film.dicom_id,
                              view=film.view, when=s.time, spacing_mm=cxr_image.FIELD_MM / rows,
                              series_number=k + 1, procedure=STUDY_TYPES[s.kind][2], orientation=s.orientation)


def write_cxr_tables(subjects: list[CxrSubject], root: Path, knobs: Knobs) -> dict[str, int]:
    """``record_list.csv``, ``mimic-cxr-2.0.0-metadata.csv`` and ``-chexpert.csv``; returns counts."""
    ecg_rows = [{"subject_id": int(s.subject_id), "study_id": int(e.study_id), "file_name": e.study_id,
                 "ecg_time": e.time.strftime("%Y-%m-%d %H:%M:%S"),
                 "path": f"files/p{s.subject_id[:4]}/p{s.subject_id}/s{e.study_id}/{e.study_id}"}
                for s in subjects for e in s.ecgs]
    ecg = pd.DataFrame(ecg_rows, columns=["subject_id", "study_id", "file_name", "ecg_time", "path"])
    (root / ECG_DIR).mkdir(parents=True, exist_ok=True)
    ecg.sort_values(["subject_id", "ecg_time", "study_id"]).to_csv(root / ECG_DIR / "record_list.csv", index=False)

    rows, cols = knobs.cxr_shape
    meta = pd.DataFrame([{
        "dicom_id": f.dicom_id, "subject_id": int(s.subject_id), "study_id": int(st.study_id),
        "PerformedProcedureStepDescription": STUDY_TYPES[st.kind][2], "ViewPosition": f.view,
        "Rows": rows, "Columns": cols, "StudyDate": int(st.time.strftime("%Y%m%d")),
        "StudyTime": float(st.time.strftime("%H%M%S.%f")[:10]),
        "ProcedureCodeSequence_CodeMeaning": STUDY_TYPES[st.kind][2],
        "ViewCodeSequence_CodeMeaning": VIEW_MEANING[f.view],
        "PatientOrientationCodeSequence_CodeMeaning": st.orientation,
    } for s in subjects for st in s.studies for f in st.films])
    chex = pd.DataFrame([{"subject_id": int(s.subject_id), "study_id": int(st.study_id), **st.chexpert}
                         for s in subjects for st in s.studies], columns=["subject_id", "study_id", *CHEXPERT_COLUMNS])
    (root / CXR_DIR).mkdir(parents=True, exist_ok=True)
    meta.sort_values(["subject_id", "study_id", "dicom_id"]).to_csv(root / CXR_DIR / "mimic-cxr-2.0.0-metadata.csv",
                                                                    index=False)
    chex.sort_values(["subject_id", "study_id"]).to_csv(root / CXR_DIR / "mimic-cxr-2.0.0-chexpert.csv", index=False)
    return {"subjects": len(subjects), "ecgs": len(ecg), "studies": len(chex), "images": len(meta)}
