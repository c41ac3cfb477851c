"""How separable each CMR label is from the ECG alone and from the cine alone, without deep models.

Generates (or reuses) a synthetic CMR cohort under ``--out`` (git-ignored ``.cache/``), reads every
pair as the models do (``read_ecg``: 100 Hz, 10 s, z-scored leads; ``read_cine``: ``--size`` px,
``--frames`` frames) and prints out-of-fold AUROCs per label (5 folds by subject) of two proxies:

- ECG: RR-interval statistics (``detect_rpeaks``), the per-lead median beat (-0.25..+0.45 s around
  the R peak, 50 Hz) and per-lead amplitude percentiles; a logistic regression and a small
  gradient-boosting model;
- cine: the heart region's pixels over the cycle, its bright (blood) fraction per frame and ED/ES
  ratios (an EF proxy); logistic regressions on all of them and on 30 principal components.

A proxy's AUROC is the better of its two models. The CMR latent model (docs/synthetic.md) was
calibrated with it, at the demo's resolution, on 400 subjects, seeds 0 and 1 (about 2 min each)::

    nice python scripts/synthetic_separability.py --subjects 400 --seed 0
    python scripts/synthetic_separability.py --smoke-test   # 60 subjects, seconds
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from xmodal.data.beats import detect_rpeaks
from xmodal.data.dicom import read_cine
from xmodal.data.ecg import read_ecg
from xmodal.data.manifest import load_manifest
from xmodal.data.synthetic import ensure_demo_cohort
from xmodal.data.synthetic.latent import CMR_LABELS

ECG_FS = 100


def ecg_features(path: str) -> np.ndarray:
    """RR statistics, per-lead median beat (downsampled 2x) and amplitude percentiles of one record."""
    x = read_ecg(path, fs=ECG_FS)
    peaks = detect_rpeaks(x, ECG_FS)
    rr = np.diff(peaks) / ECG_FS if len(peaks) > 2 else np.array([1.0, 1.0])
    rr_stats = [rr.mean(), rr.std() / rr.mean(), np.abs(np.diff(rr)).mean() / rr.mean() if len(rr) > 1 else 0.0]
    lo, hi = int(0.25 * ECG_FS), int(0.45 * ECG_FS)
    beats = [x[:, p - lo:p + hi] for p in peaks if lo <= p < x.shape[1] - hi]
    median = np.median(beats, axis=0)[:, ::2] if beats else np.zeros((12, (lo + hi + 1) // 2))
    pct = np.percentile(x, [1, 5, 50, 95, 99], axis=1).T
    return np.concatenate([rr_stats, median.ravel(), pct.ravel()]).astype(np.float64)


def cine_features(path: str, size: int, frames: int) -> np.ndarray:
    """The heart region's pixels over the cycle, its blood area per frame and ED/ES ratios."""
    c = read_cine(path, frames=frames, size=size)
    heart = c[:, round(0.31 * size):round(0.65 * size), round(0.40 * size):round(0.74 * size)]
    bright = (heart > 0.5 * (heart.max() + np.median(heart))).mean(axis=(1, 2))
    signal = heart.mean(axis=(1, 2))
    es = int(np.argmin(signal))
    ratios = [signal[es] / signal[0], bright[es] / max(bright[0], 1e-6), bright[0], bright[es], es / frames]
    return np.concatenate([bright, signal, ratios, heart.ravel()]).astype(np.float64)


def oof_auroc(x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Out-of-fold AUROC of a logistic regression and of a small gradient-boosting model (with many
    features, pixels: of logistic regressions on all of them and on 30 principal components)."""
    cv = StratifiedGroupKFold(5, shuffle=True, random_state=seed)
    if x.shape[1] < 1000:
        models = {"logreg": make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=5000)),
                  "gbm": HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, max_leaf_nodes=8,
                                                        l2_regularization=1.0, random_state=seed)}
    else:
        models = {"logreg": make_pipeline(StandardScaler(), LogisticRegression(C=0.002, max_iter=5000)),
                  "pca-logreg": make_pipeline(StandardScaler(), PCA(30, random_state=seed),
                                              LogisticRegression(C=0.1, max_iter=5000))}
    return {name: float(roc_auc_score(y, cross_val_predict(m, x, y, groups=groups, cv=cv,
                                                           method="predict_proba")[:, 1]))
            for name, m in models.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=".cache/separability")
    ap.add_argument("--cine-shape", type=int, default=64, help="rows = columns of the written cines")
    ap.add_argument("--cine-frames", type=int, default=25, help="frames of the written cines")
    ap.add_argument("--size", type=int, default=48, help="px the cines are read at (as the model sees them)")
    ap.add_argument("--frames", type=int, default=16, help="frames the cines are read at")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--smoke-test", action="store_true", help="60 subjects at 32 px, 8 frames: checks it runs")
    args = ap.parse_args()
    if args.smoke_test:
        args.subjects, args.cine_shape, args.cine_frames, args.size, args.frames = 60, 32, 8, 32, 8

    t0 = time.perf_counter()
    root = Path(args.out) / f"cmr-{args.subjects}-{args.seed}-{args.cine_shape}-{args.cine_frames}"
    df = load_manifest(ensure_demo_cohort(root, subjects=args.subjects, seed=args.seed, kind="cmr",
                                          cine_shape=(args.cine_shape, args.cine_shape),
                                          cine_frames=args.cine_frames, workers=args.workers, verbose=False))
    ecg = np.stack([ecg_features(p) for p in df["ecg_path"]])
    img = np.stack([cine_features(p, args.size, args.frames) for p in df["image_path"]])
    groups = df["subject_id"].to_numpy()
    rows = []
    for label in CMR_LABELS:
        y = df[label].to_numpy()
        e, i = oof_auroc(ecg, y, groups), oof_auroc(img, y, groups)
        rows.append({"label": label, "prevalence": y.mean(), **{f"ecg {k}": v for k, v in e.items()},
                     **{f"img {k}": v for k, v in i.items()}, "ECG": max(e.values()), "image": max(i.values())})
    table = pd.DataFrame(rows).set_index("label")
    table["image - ECG"] = table["image"] - table["ECG"]
    print(f"{len(df)} pairs of {args.subjects} subjects, cines {args.cine_shape} px x {args.cine_frames} frames "
          f"read at {args.size} px x {args.frames} frames ({time.perf_counter() - t0:.0f} s)")
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
