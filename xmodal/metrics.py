"""Validation/test metrics: AUROC, AUPRC (average precision) and bootstrap confidence intervals."""

from __future__ import annotations

import math

import numpy as np

# sklearn is imported where used: importing it costs ~0.7 s of CPU (scipy.stats), paid by every Ray
# process that imports xmodal's stages (Tune trial functions, Train controllers) whether it scores or not.


def binary_metrics(y_true: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """``{"auroc", "auprc", "n", "prevalence"}``; NaN labels are dropped, one class gives NaN scores.

    Args:
        y_true: ``(n,)`` 0/1 (or NaN for unknown).
        score: ``(n,)`` any monotone score (logits are fine).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    y_true, score = np.asarray(y_true, float), np.asarray(score, float)
    keep = ~np.isnan(y_true) & np.isfinite(score)
    y, s = y_true[keep], score[keep]
    out = {"n": int(len(y)), "prevalence": float(y.mean()) if len(y) else math.nan}
    if len(np.unique(y)) < 2:
        return {**out, "auroc": math.nan, "auprc": math.nan}
    return {**out, "auroc": float(roc_auc_score(y, s)), "auprc": float(average_precision_score(y, s))}


def resample_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n)``: how many times each row is drawn in each bootstrap resample (rows drawn with
    replacement, ``n`` per resample)."""
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    flat = (idx + n * np.arange(n_boot)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(float)


def weighted_auroc_ap(y: np.ndarray, score: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and average precision of ``B`` row-weightings at once (NaN where a weighting has one class).

    With integer weights (bootstrap counts) each value equals sklearn's ``roc_auc_score`` /
    ``average_precision_score`` on the resample itself (tested): one sort and two cumulative sums,
    instead of ``B`` sklearn calls whose input validation dominates on cohort-sized arrays.

    Args:
        y: ``(n,)`` 0/1. score: ``(n,)``. w: ``(B, n)`` non-negative row weights.
    """
    order = np.argsort(-score, kind="mergesort")
    y, score, w = y[order], score[order], w[:, order]
    last = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]  # last row of each group of tied scores
    tp = np.cumsum(w * y, axis=1)[:, last]
    fp = np.cumsum(w * (1 - y), axis=1)[:, last]
    pos, neg = tp[:, -1:], fp[:, -1:]
    ok = (pos[:, 0] > 0) & (neg[:, 0] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr, fpr = np.c_[np.zeros(len(w)), tp / pos], np.c_[np.zeros(len(w)), fp / neg]
        auroc = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2, axis=1)  # trapezoids: ties count 1/2
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-300), 0.0)
        ap = np.sum(np.diff(tpr, axis=1) * precision, axis=1)
    return np.where(ok, auroc, np.nan), np.where(ok, ap, np.nan)


def _percentiles(v: np.ndarray, alpha: float) -> tuple[float, float]:
    v = v[~np.isnan(v)]
    if not len(v):
        return math.nan, math.nan
    lo, hi = np.percentile(v, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def bootstrap_ci(y_true: np.ndarray, score: np.ndarray, *, n_boot: int = 1000, alpha: float = 0.05,
                 seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap CIs of AUROC and AUPRC (resampling pairs; resamples with one class skipped)."""
    y_true, score = np.asarray(y_true, float), np.asarray(score, float)
    keep = ~np.isnan(y_true)
    y, s = y_true[keep], score[keep]
    if not n_boot or not len(y):
        return {"auroc": (math.nan, math.nan), "auprc": (math.nan, math.nan)}
    auroc, ap = weighted_auroc_ap(y, s, resample_counts(len(y), n_boot, seed))
    return {"auroc": _percentiles(auroc, alpha), "auprc": _percentiles(ap, alpha)}


def with_ci(y_true: np.ndarray, score: np.ndarray, **kw) -> dict[str, float]:
    """Point metrics plus ``auroc_lo/auroc_hi/auprc_lo/auprc_hi``."""
    m = binary_metrics(y_true, score)
    cis = bootstrap_ci(y_true, score, **kw)
    for name, (lo, hi) in cis.items():
        m[f"{name}_lo"], m[f"{name}_hi"] = lo, hi
    return m


def paired_auroc_delta(y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, *, n_boot: int = 1000,
                       alpha: float = 0.05, seed: int = 0) -> dict[str, float]:
    """AUROC(a) - AUROC(b) on the same rows, with a paired percentile-bootstrap CI (the same resample for
    both models, so their shared sampling noise cancels): ``{"delta", "delta_lo", "delta_hi", "p_le_0"}``,
    ``p_le_0`` being the fraction of resamples where ``a`` is no better than ``b``."""
    from sklearn.metrics import roc_auc_score

    y_true = np.asarray(y_true, float)
    keep = ~np.isnan(y_true)
    y, a, b = y_true[keep], np.asarray(score_a, float)[keep], np.asarray(score_b, float)[keep]
    if len(np.unique(y)) < 2:
        return {"delta": math.nan, "delta_lo": math.nan, "delta_hi": math.nan, "p_le_0": math.nan}
    w = resample_counts(len(y), n_boot, seed)
    d = weighted_auroc_ap(y, a, w)[0] - weighted_auroc_ap(y, b, w)[0]  # the same resamples for both
    d = d[~np.isnan(d)]
    lo, hi = _percentiles(d, alpha)
    return {"delta": float(roc_auc_score(y, a) - roc_auc_score(y, b)), "delta_lo": lo, "delta_hi": hi,
            "p_le_0": float(np.mean(d <= 0)) if len(d) else math.nan}
