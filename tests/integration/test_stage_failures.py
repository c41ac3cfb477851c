"""A stage stopped mid-way by an error in its worker (here a bad record, as a worker would meet one)
reports that error in one line, without a retry, and resumes from its last checkpoint when run again:
in a Ray Train run and in process (:mod:`xmodal.stages.session`) alike."""

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
    """``loop`` with every epoch's report appended to ``log``; raises :data:`BAD` after ``fail_after``
    reports, once the last one is saved (in a Train run: once the controller has taken it)."""

    def wrapped(lc: dict) -> None:
        import time

        from xmodal.stages import loop as L
        from xmodal.stages import session

        real, epochs = L.end_epoch, []

        def end_epoch(worker, st, metrics, *args, **kw):
            stop = real(worker, st, metrics, *args, **kw)
            epochs.append(st.history[-1]["epoch"])
            if worker.is_main:
                Path(log).write_text(json.dumps(epochs))
            if fail_after is not None and len(epochs) >= fail_after:
                if session.current() is None:
                    time.sleep(3)  # past the Train controller's 2 s poll: the checkpoint is registered
                raise BAD
            return stop

        L.end_epoch = end_epoch
        try:
            loop(lc)
        finally:
            L.end_epoch = real

    return wrapped


@pytest.mark.timeout(300)
@pytest.mark.parametrize("launcher", ["ray_train", "in_process"])
def test_stage_stopped_by_a_worker_error_reports_it_and_resumes_from_its_checkpoint(
        ray_local, smoke_cfg, tmp_path, monkeypatch, launcher):
    # image_pretrain and ecg_ssl train in one run (local Ray oversubscribes the cores); the bad record
    # turns up in ecg_ssl, after image_pretrain was stored.
    cfg = apply_overrides(smoke_cfg, {"scaling.num_workers": 1, "scaling.launcher": launcher, "ecg_ssl.epochs": 3,
                                      "ecg_ssl.patience": 0, "image_pretrain.epochs": 1,
                                      "data.storage": str(tmp_path / launcher)})
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

    # Run again: image_pretrain is stored, so ecg_ssl runs alone, under the same run name, and resumes
    # from that run's last checkpoint.
    monkeypatch.setattr(ecg_ssl, "train_loop", _reporting(ecg_ssl.train_loop, str(tmp_path / "again.json")))
    image, ssl = image_pretrain_ecg_ssl.run(cfg, shards, store, verbose=False)
    assert json.loads((tmp_path / "again.json").read_text()) == [2], "the stage started over"
    assert [h["epoch"] for h in ssl.metrics["history"]] == [0, 1, 2]  # the history came with the checkpoint
    assert store.exists(ecg_ssl.STAGE, s_key) and image.key == i_key
