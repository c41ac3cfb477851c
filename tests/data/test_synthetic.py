"""Synthetic cohorts: deterministic bytes, real formats and layouts, builder edge cases present,
the CLI, and learnability (the image predicts cardiomegaly clearly, the ECG weakly; the CMR ECG shows
each condition partially, the cine clearly)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from xmodal.data.dicom import dicom_summary, read_cine, read_cxr
from xmodal.data.ecg import load_leads, read_ecg
from xmodal.data.manifest import check_no_leakage, load_manifest
from xmodal.data.synthetic import Knobs, build_manifest, ensure_demo_cohort, generate_cohort
from xmodal.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SMALL = dict(subjects=40, seed=7, cxr_shape=(64, 64))  # same as tests/data/test_mimic.py: generated once


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory) -> Path:
    root = tmp_path_factory.getbasetemp() / "synthetic-cxr-small"
    return ensure_demo_cohort(root, workers=2, verbose=False, **SMALL).parent


def tree_digest(root: Path) -> dict[str, str]:
    """``{relative path: sha1 of the bytes}`` of every file under ``root``."""
    return {p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    knobs = Knobs(cxr_shape=(48, 40))
    generate_cohort(tmp_path / "a", subjects=10, seed=5, knobs=knobs, workers=1)
    generate_cohort(tmp_path / "b", subjects=10, seed=5, knobs=knobs, workers=2)  # two chunks of subjects
    generate_cohort(tmp_path / "c", subjects=10, seed=6, knobs=knobs, workers=1)
    a, b, c = (tree_digest(tmp_path / k) for k in "abc")
    assert len(a) > 40 and a == b  # every table, .hea, .dat and .dcm
    dat = sorted(k for k in a if k.endswith(".dat"))[0]
    dcm = sorted(k for k in a if k.endswith(".dcm"))[0]
    assert (tmp_path / "a" / dat).read_bytes() == (tmp_path / "b" / dat).read_bytes()
    assert pydicom.dcmread(tmp_path / "a" / dcm).PixelData == pydicom.dcmread(tmp_path / "b" / dcm).PixelData
    # another seed: other subjects, other signals and pixels
    assert a["mimic-iv-ecg/record_list.csv"] != c["mimic-iv-ecg/record_list.csv"]
    dat_c = sorted(k for k in c if k.endswith(".dat"))[0]
    dcm_c = sorted(k for k in c if k.endswith(".dcm"))[0]
    assert (tmp_path / "a" / dat).read_bytes() != (tmp_path / "c" / dat_c).read_bytes()
    assert pydicom.dcmread(tmp_path / "a" / dcm).PixelData != pydicom.dcmread(tmp_path / "c" / dcm_c).PixelData
    # the manifests agree too (paths relative to each cohort folder)
    ma, mb = (load_manifest(build_manifest(tmp_path / k, "cxr").manifest_path, resolve=False) for k in "ab")
    pd.testing.assert_frame_equal(ma, mb)


def test_cmr_cohort_is_deterministic_too(tmp_path):
    knobs = Knobs(cine_shape=(32, 32), cine_frames=8)
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        generate_cohort(tmp_path / name, subjects=2, seed=seed, kind="cmr", knobs=knobs, workers=1)
    a, b, c = (tree_digest(tmp_path / k) for k in "abc")
    assert sum(k.endswith(".dcm") for k in a) >= 16 and a == b  # cine files are named by their (seeded) UIDs
    assert not set(a.values()) & set(c.values())


def test_cached_cohort_is_reused_and_knobs_change_it(tmp_path):
    m = ensure_demo_cohort(tmp_path, subjects=3, seed=0, cxr_shape=(32, 32), workers=1, verbose=False)
    stamp = (tmp_path / "cohort.json").stat().st_mtime_ns
    assert ensure_demo_cohort(tmp_path, subjects=3, seed=0, cxr_shape=(32, 32), workers=1, verbose=False) == m
    assert (tmp_path / "cohort.json").stat().st_mtime_ns == stamp
    ensure_demo_cohort(tmp_path, subjects=3, seed=0, cxr_shape=(40, 32), workers=1, verbose=False)
    assert (tmp_path / "cohort.json").stat().st_mtime_ns != stamp
    assert pydicom.dcmread(next((tmp_path / "mimic-cxr").rglob("*.dcm"))).Rows == 40
    with pytest.raises(ConfigError, match="unknown synthetic knob"):
        ensure_demo_cohort(tmp_path, subjects=3, cxr_size=64)
    with pytest.raises(ConfigError, match="subjects=0"):
        ensure_demo_cohort(tmp_path / "none", subjects=0)
    assert not (tmp_path / "none").exists()


# ---------------------------------------------------------------------------------------------
# Formats and layout
# ---------------------------------------------------------------------------------------------


def test_mimic_layout(small_cohort):
    ecg = pd.read_csv(small_cohort / "mimic-iv-ecg/record_list.csv", dtype=str)
    for r in ecg.itertuples():
        assert re.fullmatch(r"files/p\d{4}/p\d{8}/s\d{8}/\d{8}", r.path), r.path
        assert r.path == f"files/p{r.subject_id[:4]}/p{r.subject_id}/s{r.study_id}/{r.study_id}"
        assert r.file_name == r.study_id
        assert (small_cohort / "mimic-iv-ecg" / f"{r.path}.hea").is_file()
    meta = pd.read_csv(small_cohort / "mimic-cxr/mimic-cxr-2.0.0-metadata.csv", dtype=str)
    for r in meta.itertuples():
        assert re.fullmatch(r"([0-9a-f]{8}-){4}[0-9a-f]{8}", r.dicom_id), r.dicom_id
        assert (small_cohort / f"mimic-cxr/files/p{r.subject_id[:2]}/p{r.subject_id}/s{r.study_id}/"
                               f"{r.dicom_id}.dcm").is_file()
    assert len(list((small_cohort / "mimic-iv-ecg").rglob("*.hea"))) == len(ecg)
    assert len(list((small_cohort / "mimic-iv-ecg").rglob("*.dat"))) == len(ecg)
    assert len(list((small_cohort / "mimic-cxr").rglob("*.dcm"))) == len(meta)
    chex = pd.read_csv(small_cohort / "mimic-cxr/mimic-cxr-2.0.0-chexpert.csv")
    assert len(chex.columns) == 16 and {"Cardiomegaly", "Pleural Effusion", "Edema", "No Finding"} <= set(chex.columns)


def test_files_are_readable_by_the_readers(small_cohort):
    df = load_manifest(small_cohort / "manifest.parquet")
    check_no_leakage(df)
    for row in df.head(4).itertuples():
        raw, fs = load_leads(row.ecg_path)
        assert fs == 500 and raw.shape == (12, 5000)
        assert 0.3 < np.ptp(raw[1]) < 8.0  # lead II: about a millivolt of QRS, in mV
        x = read_ecg(row.ecg_path)
        assert x.shape == (12, 1000) and np.isfinite(x).all()
        img = read_cxr(row.image_path, size=32)
        assert img.shape == (32, 32) and 0 <= img.min() and img.max() <= 1 and img.std() > 0.05
        assert dicom_summary(row.image_path)["view_position"] in ("PA", "AP")
    lateral = next(p for p in (small_cohort / "mimic-cxr").rglob("*.dcm")
                   if dicom_summary(p)["view_position"] in ("LATERAL", "LL"))
    assert read_cxr(lateral, size=32).std() > 0.05


def test_cmr_cohort_reads_as_cine(tmp_path):
    m = ensure_demo_cohort(tmp_path, subjects=4, seed=1, kind="cmr", cine_shape=(48, 48), cine_frames=8,
                           workers=1, verbose=False)
    df = load_manifest(m)
    assert (df["image_kind"] == "cine").all() and list(df.columns[-4:]) == ["mi", "cardiomyopathy", "af", "hf"]
    row = df.iloc[0]
    assert re.fullmatch(r"\d{7}_20205_[23]_0\.hea", Path(row.ecg_path).name)
    assert re.fullmatch(r"\d{7}_20209_[23]_0", Path(row.image_path).name)
    assert len(list(Path(row.image_path).glob("*.dcm"))) == 8
    cine = read_cine(row.image_path, frames=8, size=32)
    assert cine.shape == (8, 32, 32) and cine.std() > 0.05
    assert np.abs(cine[0] - cine[3]).mean() > 1e-3  # the heart moves
    assert read_ecg(row.ecg_path).shape == (12, 1000)


def test_builder_edge_cases_are_present(small_cohort):
    """Laterals, ECGs outside ±24 h, uncertain and blank labels: the builder's filters have work."""
    meta = pd.read_csv(small_cohort / "mimic-cxr/mimic-cxr-2.0.0-metadata.csv", dtype=str)
    assert meta["ViewPosition"].isin(["LATERAL", "LL"]).sum() >= 5
    assert set(meta["ViewPosition"]) <= {"PA", "AP", "LATERAL", "LL"}
    ecg = pd.read_csv(small_cohort / "mimic-iv-ecg/record_list.csv", dtype=str)
    t = pd.to_datetime(meta["StudyDate"] + meta["StudyTime"].str.split(".").str[0].str.zfill(6), format="%Y%m%d%H%M%S")
    films = pd.DataFrame({"subject_id": meta["subject_id"], "t": t})
    gaps = ecg.assign(t=pd.to_datetime(ecg["ecg_time"])).merge(films, on="subject_id", suffixes=("", "_img"))
    nearest = (gaps["t"] - gaps["t_img"]).abs().groupby(gaps["study_id"]).min() / pd.Timedelta(hours=1)
    assert ((nearest > 24) & (nearest <= 40)).sum() >= 2  # just outside the default window
    assert (nearest > 240).sum() >= 1  # unrelated ECGs, weeks away
    assert (ecg.groupby("subject_id").size() > 1).any()
    chex = pd.read_csv(small_cohort / "mimic-cxr/mimic-cxr-2.0.0-chexpert.csv")
    for col in ("Cardiomegaly", "Pleural Effusion", "Edema"):
        assert set(chex[col].dropna()) == {-1.0, 0.0, 1.0}, col
        assert chex[col].isna().any(), col


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "xmodal.data.synthetic", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)


def test_cli_generates_a_tiny_cohort(tmp_path):
    args = ("--out", str(tmp_path / "c"), "--subjects", "4", "--seed", "1", "--cxr-shape", "32", "32",
            "--workers", "1", "--image-strength", "0.8", "--prevalence", "edema=0.3")
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert "pairs (each ECG used once)" in r.stdout and r.stdout.strip().endswith("manifest.parquet")
    df = load_manifest(tmp_path / "c/manifest.parquet")
    assert len(df) >= 1 and pydicom.dcmread(df["image_path"][0]).Rows == 32
    again = run_cli(*args)
    assert again.returncode == 0 and "up to date" in again.stdout


def test_cli_errors_are_one_line(tmp_path):
    r = run_cli("--out", str(tmp_path / "c"), "--subjects", "4", "--cxr-shape", "8", "8")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == ["error: cxr_shape = (8, 8) must be two sizes in [32, 4096]"]


# ---------------------------------------------------------------------------------------------
# Learnability
# ---------------------------------------------------------------------------------------------


def crude_ecg_features(hea: str) -> np.ndarray:
    """Log std and range per lead and the heart rate, straight from the format-16 ``.dat`` (200/mV),
    after subtracting a 0.6 s moving mean (a crude baseline)."""
    from scipy.ndimage import uniform_filter1d
    from scipy.signal import find_peaks

    x = np.fromfile(hea[:-4] + ".dat", dtype="<i2").reshape(-1, 12).T / 200.0
    x = x - uniform_filter1d(x, 300, axis=1)
    peaks, _ = find_peaks(x[1], height=0.5 * np.percentile(x[1], 99.5), distance=150)  # lead II, >= 0.3 s apart
    return np.concatenate([np.log(x.std(axis=1)), np.log(np.ptp(x, axis=1)), [len(peaks) * 6.0]])


def crude_image_features(path: str) -> np.ndarray:
    """Column profile of the lower-middle band of a 32 x 32 thumbnail (where the heart's width shows)."""
    return read_cxr(path, size=32)[14:26].mean(axis=0)


def cv_auroc(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    """Out-of-fold AUROC of a standardised logistic regression, folds by subject."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000))
    p = cross_val_predict(model, x, y, groups=groups, cv=GroupKFold(5), method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def test_image_beats_ecg_for_cardiomegaly(tmp_path_factory):
    """Seeds 3-6 gave image 0.81-0.90 and ECG 0.60-0.71 with these features (oracle ~0.9: label noise)."""
    pytest.importorskip("sklearn")
    m = ensure_demo_cohort(tmp_path_factory.mktemp("learn") / "cxr", subjects=300, seed=3, cxr_shape=(64, 64),
                           workers=2, verbose=False)
    df = load_manifest(m)
    df = df[df["cardiomegaly"].notna()].reset_index(drop=True)
    y, groups = df["cardiomegaly"].to_numpy(), df["subject_id"].to_numpy()
    assert len(df) > 250 and 0.15 < y.mean() < 0.45
    img = np.stack([crude_image_features(p) for p in df["image_path"]])
    ecg = np.stack([crude_ecg_features(p) for p in df["ecg_path"]])
    auc_img, auc_ecg = cv_auroc(img, y, groups), cv_auroc(ecg, y, groups)
    assert auc_ecg > 0.55, (auc_img, auc_ecg)
    assert auc_img > 0.75 and auc_img > auc_ecg + 0.1, (auc_img, auc_ecg)


# ---------------------------------------------------------------------------------------------
# CMR latent model: the ECG shows each condition partially, the cine clearly
# ---------------------------------------------------------------------------------------------


def test_cmr_ecg_shows_q_waves_in_some_infarcts_only():
    """Q waves in Q_WAVE_FRACTION of infarcts, of variable amplitude; positional Q waves without one."""
    from xmodal.data.synthetic.latent import POSITIONAL_Q_FRACTION, Q_WAVE_FRACTION, cmr_states

    states = cmr_states(np.random.default_rng(0), 20_000, Knobs())
    mi = np.array([s.mi for s in states])
    q = np.array([s.q_mv for s in states])
    assert abs(mi.mean() - 0.25) < 0.02  # the default prevalence
    assert abs((q[mi] > 0).mean() - Q_WAVE_FRACTION) < 0.03
    assert abs((q[~mi] > 0).mean() - POSITIONAL_Q_FRACTION) < 0.02
    assert q[q > 0].std() / q[q > 0].mean() > 0.4  # amplitudes vary from person to person
    assert np.median(q[mi & (q > 0)]) > 1.5 * np.median(q[~mi & (q > 0)])  # positional ones are smaller
    assert all(s.q_territory == s.territory for s in states if s.mi)


def test_cmr_q_wave_deepens_the_leads_facing_the_scar():
    from xmodal.data.synthetic.ecg_signal import LEADS, EcgParams, cmr_effects, simulate_ecg

    quiet = EcgParams(noise_mv=0.0, powerline_mv=0.0, wander_mv=0.0)
    sig = {q: simulate_ecg(cmr_effects(quiet, dilation=0.0, hf=0.0, af=False, q_mv=q, q_territory="inferior",
                                       strength=1.0), np.random.default_rng(0), fs=500, seconds=3.0)
           for q in (0.0, 0.25)}
    added = sig[0.25] - sig[0.0]  # the same beats (same random stream): only the Q wave differs
    assert added[LEADS.index("aVF")].min() < -0.2 and added[LEADS.index("III")].min() < -0.2  # facing the scar
    assert np.abs(added[LEADS.index("I")]).max() < 0.1 and added[LEADS.index("aVR")].max() > 0.1


def test_cmr_af_removes_the_atrial_kick():
    from xmodal.data.synthetic.cmr_cine import volume_curve

    phase = np.array([0.84, 0.99])
    sinus, af = volume_curve(phase, 100.0, 40.0), volume_curve(phase, 100.0, 40.0, atrial=0.0)
    assert sinus[1] - sinus[0] > 8 and af[1] - af[0] < 1  # late-diastolic filling only with atrial systole


def test_cmr_default_prevalence_leaves_positives_in_a_small_validation_split():
    k = Knobs()
    assert all(0.2 <= k.prevalence_of(label) <= 0.3 for label in ("mi", "cardiomyopathy", "af", "hf"))


def test_cmr_image_ef_separates_hf_better_than_the_heart_rate(tmp_path):
    """An EF read off a 32-px cine (blood area at end-systole vs end-diastole) beats the ECG's heart
    rate for hf (seed 1: 0.85 vs 0.59; seeds 2-4: 0.75-0.84 vs 0.58-0.68)."""
    from sklearn.metrics import roc_auc_score

    from xmodal.data.beats import detect_rpeaks

    m = ensure_demo_cohort(tmp_path / "cmr", subjects=80, seed=1, kind="cmr", cine_shape=(32, 32), cine_frames=10,
                           workers=1, verbose=False)
    df = load_manifest(m)
    y = df["hf"].to_numpy()
    assert len(df) >= 80 and 12 <= y.sum() <= 30

    def ef(path: str) -> float:
        blood = (read_cine(path, frames=10, size=32)[:, 10:21, 13:24] > 0.6).sum(axis=(1, 2))  # the LV region
        return 1.0 - blood.min() / blood[0]

    auc_img = roc_auc_score(y, [-ef(p) for p in df["image_path"]])
    auc_ecg = roc_auc_score(y, [len(detect_rpeaks(read_ecg(p), 100)) for p in df["ecg_path"]])
    assert auc_img > 0.75 and auc_img > auc_ecg + 0.15, (auc_img, auc_ecg)
