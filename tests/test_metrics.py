import math

import numpy as np

from xmodal.metrics import binary_metrics, bootstrap_ci, with_ci


def test_perfect_and_reversed_scores():
    y = np.array([0, 0, 1, 1.0])
    assert binary_metrics(y, np.array([0.1, 0.2, 0.8, 0.9]))["auroc"] == 1.0
    assert binary_metrics(y, np.array([0.9, 0.8, 0.2, 0.1]))["auroc"] == 0.0


def test_nan_labels_are_dropped_and_single_class_is_nan():
    m = binary_metrics(np.array([0, np.nan, 1.0]), np.array([0.0, 5.0, 1.0]))
    assert m["n"] == 2 and m["auroc"] == 1.0
    assert math.isnan(binary_metrics(np.ones(4), np.arange(4.0))["auroc"])


def test_bootstrap_ci_brackets_point_estimate():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400).astype(float)
    s = y + rng.normal(0, 1.0, 400)
    m = with_ci(y, s, n_boot=300)
    assert m["auroc_lo"] < m["auroc"] < m["auroc_hi"]
    assert 0.6 < m["auroc"] < 0.9
    lo, hi = bootstrap_ci(y, s, n_boot=300, seed=1)["auprc"]
    assert lo < hi
