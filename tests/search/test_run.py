"""Refit bookkeeping: configs are matched to their refit trials by their overrides, not by order."""

from __future__ import annotations

import pandas as pd

from xmodal.search.run import _group, _same, pick_recommended


def test_same_ignores_float_noise_but_not_values():
    assert _same({"loss.tau": 0.01, "loss.strategy": "topk"}, {"loss.strategy": "topk", "loss.tau": 0.0100000001})
    assert not _same({"loss.tau": 0.01}, {"loss.tau": 0.02})
    assert not _same({"loss.tau": 0.01}, {"loss.tau": 0.01, "loss.k": 0.1})


def test_group_matches_refits_whatever_their_order():
    configs = [{"loss.tau": 0.1}, {"finetune.init": "ssl"}]
    rows = [  # shuffled: Tune does not promise the order of its results
        ({"finetune.init": "ssl"}, 1, 0.55), ({"loss.tau": 0.1}, 1, 0.70),
        ({"loss.tau": 0.1}, 0, 0.80), ({"finetune.init": "ssl"}, 0, 0.65),
    ]
    refits = pd.DataFrame([{**{f"param:{k}": v for k, v in over.items()}, "param:align.seed": s,
                            "param:finetune.seed": s, "val_auroc": auc, "val_auprc": auc / 2}
                           for over, s, auc in rows])
    g = _group(refits, configs, seeds=2)
    assert g["mean_val_auroc"].round(6).tolist() == [0.75, 0.6]
    assert g["sd_val_auroc"].round(6).tolist() == [0.05, 0.05]
    assert g["n_ok"].tolist() == [2, 2]


def test_published_defaults_are_recommended_when_they_refit_best():
    # rows: best found, published defaults (added), ECG-only baseline
    grouped = pd.DataFrame({"mean_val_auroc": [0.827, 0.838, 0.90]})
    assert pick_recommended(grouped, 2) == 1  # the defaults beat the best found; the baseline is no candidate
    assert pick_recommended(pd.DataFrame({"mean_val_auroc": [0.85, 0.838, 0.90]}), 2) == 0
