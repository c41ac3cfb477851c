"""The in-process launcher: which runs use it, its checkpoints, and the loop helpers that reach it."""

from __future__ import annotations

import pytest
import torch

from xmodal.config import ExperimentConfig, ScalingConfig, apply_overrides
from xmodal.errors import ConfigError
from xmodal.stages import loop as L
from xmodal.stages import session
from xmodal.stages.runner import in_process
from xmodal.storage import Storage


@pytest.mark.parametrize("scaling, expected", [
    (ScalingConfig(), True),
    (ScalingConfig(num_workers=2), False),
    (ScalingConfig(use_gpu=True), False),
    (ScalingConfig(launcher="ray_train"), False),
    (ScalingConfig(launcher="in_process"), True),
])
def test_one_cpu_worker_runs_in_process_unless_told_otherwise(scaling, expected):
    assert in_process(scaling) is expected


def test_in_process_with_several_workers_is_refused():
    with pytest.raises(ConfigError, match="in_process runs one CPU worker"):
        apply_overrides(ExperimentConfig(), {"scaling.launcher": "in_process", "scaling.num_workers": 2})


def _train(run: session.InProcess, epochs: int) -> L.TrainState:
    """A tiny loop as the stages write it: resume, train, end_epoch per epoch."""
    net = torch.nn.Linear(3, 1)
    opt = torch.optim.AdamW(net.parameters(), lr=0.1)
    with session.active(run):
        w = L.setup_worker(0)
        net = L.prepare(net)
        st = L.resume({"net": net}, opt, "toy")
        for epoch in range(st.epoch, epochs):
            loss = net(torch.ones(4, 3)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            L.end_epoch(w, st, {"train_loss": loss.item()}, -loss.item(), {"net": net}, opt, 0, "toy")
    return st


def test_a_run_reports_every_epoch_and_resumes_from_its_last_checkpoint(tmp_path):
    seen = []
    first = session.InProcess("toy-abc", {}, Storage(str(tmp_path)), on_report=seen.append)
    st = _train(first, epochs=2)
    assert [m["epoch"] for m in seen] == [0, 1] and first.reports == 2
    assert all("worker_peak_rss_mb" in m for m in seen)
    assert (tmp_path / "in_process" / "toy-abc" / "state.pt").is_file()
    assert session.current() is None  # the run ends with its block

    # Run again with more epochs (as a stopped run restarted): only the new epoch trains.
    again = session.InProcess("toy-abc", {}, Storage(str(tmp_path)), on_report=seen.append)
    st = _train(again, epochs=3)
    assert [m["epoch"] for m in seen] == [0, 1, 2] and again.reports == 1
    assert [h["epoch"] for h in st.history] == [0, 1, 2]  # the history came with the checkpoint

    # Another run name starts afresh.
    other = session.InProcess("toy-def", {}, Storage(str(tmp_path)))
    assert _train(other, epochs=1).history[0]["epoch"] == 0


def test_a_checkpoint_of_another_phase_is_not_resumed(tmp_path):
    run = session.InProcess("toy-abc", {}, Storage(str(tmp_path)))
    _train(run, epochs=2)
    net = torch.nn.Linear(3, 1)
    with session.active(session.InProcess("toy-abc", {}, Storage(str(tmp_path)))):
        assert L.resume({"net": net}, torch.optim.AdamW(net.parameters()), "other").epoch == 0


def test_tune_reporter_only_for_trials():
    from ray.tune.integration.ray_train import TuneReportCallback

    assert session.tune_reporter(None) is None and session.tune_reporter([object()]) is None
    trial_callback = TuneReportCallback.__new__(TuneReportCallback)  # built outside a Tune session
    assert callable(session.tune_reporter([trial_callback]))
