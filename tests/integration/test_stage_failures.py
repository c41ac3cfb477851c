"""A stage stopped mid-way by an error in a Train worker (here a bad record, as a worker would meet
one) reports that error in one line, without a retry, and resumes from its last Ray Train checkpoint
when run again."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from ray import cloudpickle  # Ray pickles train loops with its own copy

from xmodal.config import apply_overrides
from xmodal.errors import RecordError
from xmodal.stages import ecg_ssl, image_pretrain, image_pretrain_ecg_ssl
from xmodal.stages.chain import prepare
from xmodal.stages.store import StageStore

pytestmark = pytest.mark.integration
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this test module

BAD = RecordError("/data/mimic-iv-ecg/files/p1000/s40000017/40000017.hea", "12 leads expected, found 3")


def _reporting(loop, log: str, fail_after: int | None = None):
    """``loop`` with every ``ray.train.report``'s epoch appended to ``log``; raises :data:`BAD` after
    ``fail_after`` reports, once the controller has taken the last one."""

    def wrapped(lc: dict) -> None:
        import time

        import ray.train

        real, epochs = ray.train.report, []

        def report(metrics, checkpoint=None, **kw):
            real(metrics, checkpoint=checkpoint, **kw)
            epochs.append(metrics["epoch"])
            if ray.train.get_context().get_world_rank() == 0:
                Path(log).write_text(json.dumps(epochs))
            if fail_after is not None and len(epochs) >= fail_after:
                time.sleep(3)  # past the controller's 2 s poll: the checkpoint is registered
                raise BAD

        ray.train.report = report
        try:
            loop(lc)
        finally:
            ray.train.report = real

    return wrapped


@pytest.mark.timeout(300)
def test_stage_stopped_by_a_worker_error_reports_it_and_resumes_from_its_checkpoint(
        ray_local, smoke_cfg, tmp_path, monkeypatch):
    # image_pretrain and ecg_ssl train in one run (local Ray oversubscribes the cores); the bad record
    # turns up in ecg_ssl, after image_pretrain was stored.
    cfg = apply_overrides(smoke_cfg, {"scaling.num_workers": 1, "ecg_ssl.epochs": 3, "ecg_ssl.patience": 0,
                                      "image_pretrain.epochs": 1})
    shards = prepare(cfg, verbose=False)
    store = StageStore(shards.storage)
    i_key, s_key = image_pretrain.key_for(cfg, shards), ecg_ssl.key_for(cfg, shards)

    both = image_pretrain_ecg_ssl.train_loop
    monkeypatch.setattr(image_pretrain_ecg_ssl, "train_loop", _reporting(both, str(tmp_path / "first.json"),
                                                                         fail_after=3))
    with pytest.raises(RecordError) as err:  # not Ray's wrapper: the worker's own one-line error
        image_pretrain_ecg_ssl.run(cfg, shards, store, verbose=False)
    assert str(err.value) == str(BAD)
    # Image epoch 0, ssl epochs 0-1, and no retry: a retry would resume at ssl epoch 2 (logged as [2]),
    # finish without the error, and the run would not have raised.
    assert json.loads((tmp_path / "first.json").read_text()) == [0, 0, 1]
    assert store.exists(image_pretrain.STAGE, i_key)
    assert not store.exists(ecg_ssl.STAGE, s_key)  # unfinished: nothing in the stage cache

    # Run again: image_pretrain is stored, so ecg_ssl runs alone, under the same Train run name, and
    # resumes from that run's last checkpoint.
    monkeypatch.setattr(ecg_ssl, "train_loop", _reporting(ecg_ssl.train_loop, str(tmp_path / "again.json")))
    image, ssl = image_pretrain_ecg_ssl.run(cfg, shards, store, verbose=False)
    assert json.loads((tmp_path / "again.json").read_text()) == [2], "the stage started over"
    assert [h["epoch"] for h in ssl.metrics["history"]] == [0, 1, 2]  # the history came with the checkpoint
    assert store.exists(ecg_ssl.STAGE, s_key) and image.key == i_key
