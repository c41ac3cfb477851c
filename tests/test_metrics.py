import math

import numpy as np
import pytest

from xmodal.metrics import binary_metrics, bootstrap_ci, with_ci


def test_perfect_and_reversed_scores():
    y = np.array([0, 0, 1, 1.0])
    assert binary_metrics(y, np.array([0.1, 0.2, 0.8, 0.9]))["auroc"] == 1.0
    assert binary_metrics(y, np.array([0.9, 0.8, 0.2, 0.1]))["auroc"] == 0.0


def test_nan_labels_are_dropped_and_single_class_is_nan():
    m = binary_metrics(np.array([0, np.nan, 1.0]), np.array([0.0, 5.0, 1.0]))
    assert m["n"] == 2 and m["auroc"] == 1.0
    assert math.isnan(binary_metrics(np.ones(4), np.arange(4.0))["auroc"])


@pytest.mark.parametrize("n", [7, 60, 500])
def test_vectorised_resamples_match_sklearn_on_each_resample(n):
    """Parity with the plain way: sklearn's AUROC / AP on each resampled array (ties included)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from xmodal.metrics import resample_counts, weighted_auroc_ap

    rng = np.random.default_rng(n)
    y = rng.integers(0, 2, n).astype(float)
    s = np.round(y + rng.normal(0, 1.0, n), 1)  # rounded: many tied scores
    w = resample_counts(n, 40, seed=3)
    auroc, ap = weighted_auroc_ap(y, s, w)
    idx = np.random.default_rng(3).integers(0, n, size=(40, n))  # the same draws as resample_counts
    for b, row in enumerate(idx):
        assert np.array_equal(np.bincount(row, minlength=n), w[b])
        if y[row].min() == y[row].max():
            assert np.isnan(auroc[b]) and np.isnan(ap[b])
            continue
        assert auroc[b] == pytest.approx(roc_auc_score(y[row], s[row]), abs=1e-12)
        assert ap[b] == pytest.approx(average_precision_score(y[row], s[row]), abs=1e-12)


def test_bootstrap_ci_brackets_point_estimate():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400).astype(float)
    s = y + rng.normal(0, 1.0, 400)
    m = with_ci(y, s, n_boot=300)
    assert m["auroc_lo"] < m["auroc"] < m["auroc_hi"]
    assert 0.6 < m["auroc"] < 0.9
    lo, hi = bootstrap_ci(y, s, n_boot=300, seed=1)["auprc"]
    assert lo < hi


def test_paired_auroc_delta_matches_the_plain_difference_and_is_tighter_than_separate_cis():
    from sklearn.metrics import roc_auc_score

    from xmodal.metrics import bootstrap_ci, paired_auroc_delta

    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.3).astype(float)
    base = y + rng.normal(0, 1.2, 300)
    better = base + 0.5 * y  # the same noise plus a little more signal
    d = paired_auroc_delta(y, better, base, n_boot=400)
    assert d["delta"] == pytest.approx(roc_auc_score(y, better) - roc_auc_score(y, base))
    assert 0 < d["delta_lo"] < d["delta"] < d["delta_hi"] and d["p_le_0"] < 0.025
    lo_a, hi_a = bootstrap_ci(y, better, n_boot=400)["auroc"]
    lo_b, hi_b = bootstrap_ci(y, base, n_boot=400)["auroc"]
    assert lo_a < hi_b  # the separate intervals overlap, the paired one excludes 0
    same = paired_auroc_delta(y, base, base, n_boot=50)
    assert same["delta"] == 0 and same["delta_lo"] == same["delta_hi"] == 0
    y[:] = np.nan
    assert np.isnan(paired_auroc_delta(y, base, base)["delta"])
