"""Search bookkeeping: who enters the race, how race runs are matched to their trials, what the selection
block says. The race's statistics are in test_race.py."""

from __future__ import annotations

import numpy as np
import pandas as pd

from xmodal.config import ExperimentConfig
from xmodal.search.race import Race, paired_gain
from xmodal.search.run import _same, _status_of, race_entrants, race_table, seed_overrides, selection_block


def test_same_ignores_float_noise_but_not_values():
    assert _same({"loss.tau": 0.01, "loss.strategy": "topk"}, {"loss.strategy": "topk", "loss.tau": 0.0100000001})
    assert not _same({"loss.tau": 0.01}, {"loss.tau": 0.02})
    assert not _same({"loss.tau": 0.01}, {"loss.tau": 0.01, "loss.k": 0.1})


def _trials(rows, status="completed"):
    return pd.DataFrame([{**{f"param:{k}": v for k, v in over.items()}, "val_auroc": auc if status == "completed"
                          else None, "last_val_auroc": auc, "status": status} for over, auc in rows])


def test_race_entrants_are_the_best_distinct_found_then_the_published_defaults():
    published = {"loss.tau": 0.1}
    done = _trials([({"loss.tau": 0.1}, 0.9), ({"loss.tau": 0.2}, 0.8), ({"loss.tau": 0.2000000001}, 0.79),
                    ({"loss.tau": 0.3}, 0.7), ({"loss.tau": 0.4}, 0.6)])
    racers, pub = race_entrants(done, published, k=2)
    assert racers == [{"loss.tau": 0.2}, {"loss.tau": 0.3}, published] and pub == 2
    only = _trials([({"loss.tau": 0.1}, 0.9)])
    racers, pub = race_entrants(only, published, k=2)
    assert racers == [published] and pub == 0  # the search found nothing else: no challenger
    # Too few completed: the trials ASHA stopped fill the race, best last AUROC first; failed ones never.
    mixed = pd.concat([only, _trials([({"loss.tau": 0.3}, 0.6), ({"loss.tau": 0.4}, 0.7)], "stopped"),
                       _trials([({"loss.tau": 0.5}, 0.95)], "error")])
    racers, pub = race_entrants(mixed, published, k=3)
    assert racers == [{"loss.tau": 0.4}, {"loss.tau": 0.3}, published] and pub == 2


def test_race_runs_are_matched_to_their_trials_whatever_their_order():
    runs = [seed_overrides({"loss.tau": 0.2}, 1), seed_overrides({"finetune.init": "ssl"}, 1)]
    frame = pd.DataFrame([{**{f"param:{k}": v for k, v in runs[1].items()}, "status": "completed"},
                          {**{f"param:{k}": v for k, v in runs[0].items()}, "status": "error"}])
    assert [_status_of(frame, r) for r in runs] == ["error", "completed"]
    assert _status_of(frame, seed_overrides({"loss.tau": 0.3}, 1)) == "error"  # no trial: counted as failed


def test_selection_block_and_race_table_name_every_candidate():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    racers = [{"loss.strategy": "exp", "loss.tau": 0.05}, {"loss.strategy": "topk", "loss.tau": 0.01}]
    race = Race(2, published=1, seeds=[1, 2])
    base_scores = {}
    for seed in (1, 2):
        race.record(seed, y, {c: y * (1.0 - c) + rng.normal(size=200) for c in range(2)})
        base_scores[seed] = y * 0.5 + rng.normal(size=200)
    sel = race.verdict()
    ecg_only = paired_gain(y, [y + rng.normal(size=200) for _ in range(2)], list(base_scores.values()))
    block = selection_block(sel, racers, 1, ExperimentConfig(), ecg_only)
    assert block["chosen"] in ("found", "published") and set(block["candidates"]) == {"found-1", "published"}
    assert set(block["delta_vs_published"]) == set(block["delta_vs_ecg_only"]) == {"estimate", "lo", "hi"}
    assert block["seeds"] == {"found-1": [1, 2], "published": [1, 2]}
    rows = race_table(race, sel, racers, ExperimentConfig())
    assert [r["candidate"] for r in rows] == ["found-1", "published"] and rows[1]["gain_vs_published"] is None
    assert "strategy=exp" in rows[0]["settings"]
