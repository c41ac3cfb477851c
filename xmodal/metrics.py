"""Validation/test metrics: AUROC, AUPRC (average precision) and bootstrap confidence intervals."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def binary_metrics(y_true: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """``{"auroc", "auprc", "n", "prevalence"}``; NaN labels are dropped, one class gives NaN scores.

    Args:
        y_true: ``(n,)`` 0/1 (or NaN for unknown).
        score: ``(n,)`` any monotone score (logits are fine).
    """
    y_true, score = np.asarray(y_true, float), np.asarray(score, float)
    keep = ~np.isnan(y_true) & np.isfinite(score)
    y, s = y_true[keep], score[keep]
    out = {"n": int(len(y)), "prevalence": float(y.mean()) if len(y) else math.nan}
    if len(np.unique(y)) < 2:
        return {**out, "auroc": math.nan, "auprc": math.nan}
    return {**out, "auroc": float(roc_auc_score(y, s)), "auprc": float(average_precision_score(y, s))}


def bootstrap_ci(y_true: np.ndarray, score: np.ndarray, *, n_boot: int = 1000, alpha: float = 0.05,
                 seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap CIs of AUROC and AUPRC (resampling pairs; resamples with one class skipped)."""
    y_true, score = np.asarray(y_true, float), np.asarray(score, float)
    keep = ~np.isnan(y_true)
    y, s = y_true[keep], score[keep]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(n_boot, len(y)))
    aurocs, auprcs = [], []
    for row in idx:
        yb = y[row]
        if yb.min() == yb.max():
            continue
        aurocs.append(roc_auc_score(yb, s[row]))
        auprcs.append(average_precision_score(yb, s[row]))
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)

    def ci(v: list[float]) -> tuple[float, float]:
        return (float(np.percentile(v, lo)), float(np.percentile(v, hi))) if v else (math.nan, math.nan)

    return {"auroc": ci(aurocs), "auprc": ci(auprcs)}


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
    y_true = np.asarray(y_true, float)
    keep = ~np.isnan(y_true)
    y, a, b = y_true[keep], np.asarray(score_a, float)[keep], np.asarray(score_b, float)[keep]
    if len(np.unique(y)) < 2:
        return {"delta": math.nan, "delta_lo": math.nan, "delta_hi": math.nan, "p_le_0": math.nan}
    rng = np.random.default_rng(seed)
    deltas = []
    for row in rng.integers(0, len(y), size=(n_boot, len(y))):
        yb = y[row]
        if yb.min() != yb.max():
            deltas.append(roc_auc_score(yb, a[row]) - roc_auc_score(yb, b[row]))
    d = np.asarray(deltas)
    lo, hi = np.percentile(d, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return {"delta": float(roc_auc_score(y, a) - roc_auc_score(y, b)), "delta_lo": float(lo), "delta_hi": float(hi),
            "p_le_0": float(np.mean(d <= 0))}
