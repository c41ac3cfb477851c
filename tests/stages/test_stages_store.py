"""The stage cache: a stage is complete once its meta is written; submodules load by prefix."""

from __future__ import annotations

import torch
from torch import nn

from xmodal.stages.store import StageStore
from xmodal.storage import Storage


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        self.head = nn.Linear(2, 1)


def test_saved_stage_round_trips_and_exists_only_with_meta(tmp_path):
    store = StageStore(Storage(str(tmp_path)))
    net = _Net()
    assert not store.exists("align", "k1")
    out = store.save("align", "k1", state={"net": net.state_dict()}, optimizer=None, meta={"metrics": {"best": {}}})
    assert store.exists("align", "k1") and not out.reused
    loaded = store.load("align", "k1")
    assert loaded.reused and loaded.meta["stage"] == "align" and loaded.meta["key"] == "k1"
    assert loaded.meta["code_version"]
    assert not store.storage.exists("stages", "align", "k1", "optimizer.pt")  # nothing written for None
    state = store.load_state("align", "k1")["net"]
    assert state.keys() == net.state_dict().keys()


def test_load_submodule_strips_the_prefix_into_a_loadable_state_dict(tmp_path):
    store = StageStore(Storage(str(tmp_path)))
    net = _Net()
    store.save("ecg_ssl", "k", state={"net": net.state_dict()}, optimizer=None, meta={})
    enc = store.load_submodule("ecg_ssl", "k", "encoder.")
    assert sorted(enc) == ["0.bias", "0.weight", "2.bias", "2.weight"]  # no head, no prefix
    fresh = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    fresh.load_state_dict(enc)  # strict: every key matches
    x = torch.randn(5, 3)
    assert torch.equal(fresh(x), net.encoder(x))
