"""The final evaluation reads the test split once: a repeated request returns the recorded pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xmodal.config import ExperimentConfig
from xmodal.data.pipeline import ShardSet
from xmodal.stages import evaluate
from xmodal.stages.store import StageStore
from xmodal.storage import Storage


@pytest.fixture
def scored(tmp_path, monkeypatch):
    """A two-batch split and two 'models' (``key -> ecg mean * weight``); counts the passes over the split."""
    gen = torch.Generator().manual_seed(0)
    batches = [{"ecg": torch.randn(8, 2, 16, generator=gen), "label": torch.tensor([0.0, 1.0] * 4),
                "pair_id": np.array([f"p{b}{i:02d}" for i in range(8)])} for b in range(2)]
    passes: list[str] = []

    def iter_split(shards, pathology, split):
        passes.append(split)
        yield from (batches if len(passes) % 2 else batches[::-1])  # Ray Data may order blocks differently

    class Scale(torch.nn.Module):
        def __init__(self, w):
            super().__init__()
            self.w = w

        def forward(self, x):
            return x.mean(dim=(1, 2)) * self.w

    monkeypatch.setattr(evaluate, "_iter_split", iter_split)
    monkeypatch.setattr(evaluate.finetune, "load_classifier", lambda cfg, store, key, n: Scale(float(key[-1])))
    storage = Storage(str(tmp_path))
    shards = ShardSet(storage, "shards0", "cxr", ("edema",), {})
    return shards, StageStore(storage), passes


def test_a_repeated_test_pass_returns_the_record_without_reading_the_split(scored):
    shards, store, passes = scored
    models = {"ft-1": ExperimentConfig(), "ft-2": ExperimentConfig()}
    y, logits = evaluate.model_logits(shards, store, models, "edema", "test")
    assert passes == ["test"] and y.shape == (16,) and set(logits) == {"ft-1", "ft-2"}
    np.testing.assert_allclose(logits["ft-2"], 2 * logits["ft-1"], rtol=1e-6)

    y2, logits2 = evaluate.model_logits(shards, store, dict(reversed(models.items())), "edema", "test")
    assert passes == ["test"], "the same models asked again read the test split again"
    np.testing.assert_array_equal(y2, y)
    for k in models:
        np.testing.assert_allclose(logits2[k], logits[k], rtol=1e-6)

    evaluate.model_logits(shards, store, {"ft-3": ExperimentConfig()}, "edema", "test")  # another evaluation
    assert passes == ["test", "test"]


def test_passes_in_another_order_give_the_same_rows(scored):
    """Scores of models scored in different passes line up row for row (sorted by pair id)."""
    shards, store, passes = scored
    y1, a = evaluate.model_logits(shards, store, {"ft-1": ExperimentConfig()}, "edema", "val")
    y2, b = evaluate.model_logits(shards, store, {"ft-1": ExperimentConfig()}, "edema", "val")
    assert passes == ["val", "val"]
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_allclose(a["ft-1"], b["ft-1"], rtol=1e-6)


def test_validation_passes_are_not_recorded(scored):
    shards, store, passes = scored
    for _ in range(2):
        evaluate.model_logits(shards, store, {"ft-1": ExperimentConfig()}, "edema", "val")
    assert passes == ["val", "val"] and not shards.storage.exists("evaluations")


def test_single_model_evaluation_has_cis_and_is_stable_when_asked_twice(scored):
    shards, store, passes = scored
    first = evaluate.evaluate(ExperimentConfig(), shards, store, "ft-1", "test", n_boot=50)
    again = evaluate.evaluate(ExperimentConfig(), shards, store, "ft-1", "test", n_boot=50)
    assert first == again and passes == ["test"]
    assert first["auroc_lo"] <= first["auroc"] <= first["auroc_hi"]
