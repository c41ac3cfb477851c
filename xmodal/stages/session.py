"""Where a per-worker loop runs: in a Ray Train worker, or in the calling process.

Every loop (:mod:`xmodal.stages`) reaches its run through :mod:`xmodal.stages.loop`, which asks this
module first: with an :class:`InProcess` run active on this thread, the loop gets its datasets, its
checkpoint and its per-epoch report from it; otherwise from ``ray.train``. One loop function, two
launchers (:func:`xmodal.stages.runner.fit` picks):

- **Ray Train**: a ``TorchTrainer`` (several workers, GPUs): a controller, helper actors and worker
  processes that each import torch and Ray Train, about 15-20 s of wall time on 2 cores before the
  first batch.
- **In process**: one CPU worker needs none of that. The loop runs in the calling process (a Tune
  trial's own process, or the driver for the shared stages), reads its Ray datasets directly (rows in
  input order, as Train's ingest gives them), saves a checkpoint under the run's name in the stage
  storage every epoch (so a run stopped mid-way resumes there when run again, as a Train run does),
  and hands each epoch's metrics to ``on_report`` (a Tune trial's ``ray.tune.report``, so ASHA sees
  every epoch).
"""

from __future__ import annotations

import contextvars
import io
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

from xmodal.storage import Storage

_CURRENT: contextvars.ContextVar["InProcess | None"] = contextvars.ContextVar("xmodal_in_process", default=None)
STATE = "state.pt"


class InProcess:
    """One in-process run named ``name``: its datasets, checkpoints under ``storage`` and its reports."""

    def __init__(self, name: str, datasets: dict[str, Any], storage: Storage,
                 on_report: Callable[[dict[str, Any]], None] | None = None):
        self.name, self.datasets, self.storage, self.on_report = name, datasets, storage, on_report
        self.last_blob: dict[str, Any] | None = None
        self.reports = 0

    def _where(self) -> tuple[str, ...]:
        return ("in_process", self.name, STATE)

    def dataset_shard(self, name: str):
        """The whole dataset ``name`` (one worker holds every row), in input order; None if absent."""
        ds = self.datasets.get(name)
        if ds is None:
            return None
        ds.context.execution_options.preserve_order = True
        return ds.iterator()

    def checkpoint(self) -> dict[str, Any] | None:
        """The blob of this run's last checkpoint, saved by an earlier attempt (None on a first run)."""
        if not self.storage.exists(*self._where()):
            return None
        return torch.load(io.BytesIO(self.storage.read_bytes(*self._where())), map_location="cpu",
                          weights_only=False)

    def report(self, metrics: dict[str, Any], blob: dict[str, Any]) -> None:
        """Save ``blob`` as the run's checkpoint (written whole, then renamed where the store allows),
        then pass ``metrics`` on."""
        buf = io.BytesIO()
        torch.save(blob, buf)
        self.storage.write_bytes(buf.getvalue(), *self._where())
        self.last_blob, self.reports = blob, self.reports + 1
        if self.on_report is not None:
            self.on_report(metrics)


def current() -> InProcess | None:
    """The in-process run active on this thread (None inside a Ray Train worker or outside any run)."""
    return _CURRENT.get()


@contextmanager
def active(run: InProcess) -> Iterator[InProcess]:
    token = _CURRENT.set(run)
    try:
        yield run
    finally:
        _CURRENT.reset(token)


def tune_reporter(callbacks: list | None) -> Callable[[dict[str, Any]], None] | None:
    """``ray.tune.report`` when ``callbacks`` hold Tune's report callback (the run is a trial's): the
    in-process equivalent of forwarding every Train report to Tune."""
    from ray.tune.integration.ray_train import TuneReportCallback

    if not any(isinstance(c, TuneReportCallback) for c in callbacks or ()):
        return None

    def report(metrics: dict[str, Any]) -> None:
        from ray import tune

        tune.report({k: v for k, v in metrics.items() if isinstance(v, (int, float, bool, str))})

    return report
