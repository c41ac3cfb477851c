"""Stages that fail: one interrupted mid-way resumes from its last Ray Train checkpoint when it runs
again; bad input found inside a Train worker stops the run with its own one-line error."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from ray import cloudpickle  # Ray pickles train loops with its own copy

from xmodal.config import apply_overrides
from xmodal.errors import RecordError
from xmodal.stages import ecg_ssl
from xmodal.stages.chain import prepare
from xmodal.stages.store import StageStore

pytestmark = pytest.mark.integration
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this test module


def _reporting(loop, log: str, crash_after: int | None = None):
    """``loop`` with every ``ray.train.report`` epoch appended to ``log``; raises after ``crash_after``
    reports, once the controller has taken the last one (as a preempted node would)."""

    def wrapped(lc: dict) -> None:
        import time

        import ray.train

        real, epochs = ray.train.report, []

        def report(metrics, checkpoint=None, **kw):
            real(metrics, checkpoint=checkpoint, **kw)
            epochs.append(metrics["epoch"])
            if ray.train.get_context().get_world_rank() == 0:
                Path(log).write_text(json.dumps(epochs))
            if crash_after is not None and len(epochs) >= crash_after:
                time.sleep(3)  # past the controller's 2 s poll: the checkpoint is registered
                raise RuntimeError("node preempted (test)")

        ray.train.report = report
        try:
            loop(lc)
        finally:
            ray.train.report = real

    return wrapped


@pytest.mark.timeout(300)
def test_interrupted_stage_resumes_from_its_last_checkpoint(ray_local, smoke_cfg, tmp_path, monkeypatch):
    cfg = apply_overrides(smoke_cfg, {"scaling.num_workers": 1, "ecg_ssl.epochs": 3, "ecg_ssl.patience": 0})
    shards = prepare(cfg, verbose=False)
    store = StageStore(shards.storage)
    key = ecg_ssl.key_for(cfg, shards)
    loop = ecg_ssl.train_loop

    monkeypatch.setattr(ecg_ssl, "train_loop", _reporting(loop, str(tmp_path / "first.json"), crash_after=2))
    with pytest.raises(Exception, match="preempted"):
        ecg_ssl.run(cfg, shards, store, verbose=False, max_failures=0)
    assert json.loads((tmp_path / "first.json").read_text()) == [0, 1]
    assert not store.exists(ecg_ssl.STAGE, key)  # unfinished: nothing in the stage cache

    monkeypatch.setattr(ecg_ssl, "train_loop", _reporting(loop, str(tmp_path / "again.json")))
    out = ecg_ssl.run(cfg, shards, store, verbose=False)
    assert json.loads((tmp_path / "again.json").read_text()) == [2], "the stage started over"
    assert [h["epoch"] for h in out.metrics["history"]] == [0, 1, 2]  # the history came with the checkpoint
    assert store.exists(ecg_ssl.STAGE, key)


def _bad_record(lc: dict) -> None:
    raise RecordError("/data/ecg/p1000/s1/40000017", "12 leads expected, found 3")


def test_bad_input_in_a_worker_reaches_the_driver_as_its_own_error(ray_local, smoke_cfg, monkeypatch):
    cfg = apply_overrides(smoke_cfg, {"scaling.num_workers": 1, "ecg_ssl.epochs": 4})
    shards = prepare(cfg, verbose=False)
    monkeypatch.setattr(ecg_ssl, "train_loop", _bad_record)
    with pytest.raises(RecordError, match=r"^/data/ecg/p1000/s1/40000017: 12 leads expected, found 3$"):
        ecg_ssl.run(cfg, shards, StageStore(shards.storage), verbose=False, max_failures=0)
