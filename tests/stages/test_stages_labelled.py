"""Scarce labels: a seeded subset of training subjects keeps its labels; the rest align as their own class."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from xmodal.config import ExperimentConfig, apply_overrides
from xmodal.errors import ConfigError
from xmodal.stages.align import classes
from xmodal.stages.labelled import choose_pairs, hide_labels, image_key_part, image_pairs, key_part, labelled_filter


def _manifest() -> pd.DataFrame:
    rows = []
    for s in range(40):
        split = "train" if s < 30 else ("val" if s < 35 else "test")
        rows += [{"pair_id": f"p{s}-{v}", "subject_id": f"S{s:03d}", "split": split} for v in range(1 + s % 3)]
    return pd.DataFrame(rows)


def test_choose_pairs_keeps_whole_training_subjects():
    df = _manifest()
    pairs = choose_pairs(df, 0.2, seed=0)
    chosen = df[df["pair_id"].isin(pairs)]
    assert set(chosen["split"]) == {"train"}
    assert chosen["subject_id"].nunique() == 6  # ceil(0.2 * 30)
    subjects = set(chosen["subject_id"])
    assert set(df.loc[df["subject_id"].isin(subjects), "pair_id"]) == set(pairs)  # every pair of a kept subject
    assert choose_pairs(df, 0.2, seed=0) == pairs and choose_pairs(df, 0.2, seed=1) != pairs
    assert set(pairs) <= set(choose_pairs(df, 0.2, seed=0)) and len(choose_pairs(df, 0.01, seed=0)) >= 1


def test_label_fraction_is_validated_and_keyed():
    with pytest.raises(ConfigError, match="label_fraction"):
        apply_overrides(ExperimentConfig(), {"data.label_fraction": 0.0})
    assert key_part(ExperimentConfig()) == {}  # all labels: stage keys as before
    scarce = apply_overrides(ExperimentConfig(), {"data.label_fraction": 0.25})
    assert key_part(scarce) == {"label_fraction": 0.25, "label_subset_seed": 0}
    assert labelled_filter(["a"], "val") is None and labelled_filter(None, "train") is None
    assert labelled_filter(["a"], "train") is not None


def test_image_labels_all_lets_image_pretraining_use_every_label():
    scarce = apply_overrides(ExperimentConfig(), {"data.label_fraction": 0.25})
    assert image_key_part(scarce) == key_part(scarce)  # default: the image sees the same scarce labels
    own = apply_overrides(scarce, {"data.image_labels": "all"})
    assert image_key_part(own) == {} and image_pairs(own) is None  # (no cohort read: nothing to choose)
    assert key_part(own) == key_part(scarce)  # the ECG side stays scarce
    with pytest.raises(ConfigError, match="image_labels"):
        apply_overrides(ExperimentConfig(), {"data.image_labels": "some"})


def test_hide_labels_blanks_the_unlabelled_training_rows():
    batch = {"pair_id": np.array(["a", "b", "c"]), "label": np.array([1.0, 0.0, 1.0]), "ecg": np.zeros((3, 2))}
    out = hide_labels(batch, ["a", "c"])
    assert "pair_id" not in out and out["ecg"].shape == (3, 2)
    np.testing.assert_array_equal(np.isnan(out["label"]), [False, True, False])
    assert out["label"][0] == 1.0 and out["label"][2] == 1.0


def test_unlabelled_pairs_are_each_their_own_contrastive_class():
    c = classes(torch.tensor([1.0, float("nan"), 0.0, float("nan"), 1.0]))
    assert c.dtype == torch.long
    assert c[0] == c[4] == 1 and c[2] == 0
    assert c[1] != c[3] and min(c[1], c[3]) >= 2  # never a label class, never each other's
