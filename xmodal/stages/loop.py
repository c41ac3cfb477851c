"""Pieces every per-worker train loop shares: device/precision, data in memory, batching,
resume from the run's last checkpoint, and the per-epoch report.

Runs inside Ray Train workers (``ray.train.get_context()`` is available), or in the calling process
when :mod:`xmodal.stages.session` has an in-process run active: every call that reaches the run
(datasets, checkpoint, report, model wrapping) goes through here. Nothing here touches a GPU unless
the worker was given one.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

import ray.train
import ray.train.torch

from xmodal.stages import session


@dataclass
class Worker:
    """Rank, device and precision of this training worker."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        """bf16 autocast on CUDA; a no-op on CPU (nothing GPU-only is touched there)."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def setup_worker(seed: int) -> Worker:
    if session.current() is not None:  # in process: one CPU worker
        w = Worker(0, 1, torch.device("cpu"))
    else:
        ctx = ray.train.get_context()
        w = Worker(ctx.get_world_rank(), ctx.get_world_size(), ray.train.torch.get_device())
    seed_worker(w, seed)
    torch.set_num_threads(max(1, int(os.environ.get("XMODAL_TORCH_THREADS", "1"))))
    return w


def seed_worker(w: Worker, seed: int) -> None:
    """Seed torch and numpy for this rank (again at the start of each stage of a multi-stage run)."""
    torch.manual_seed(seed + w.rank)
    np.random.seed(seed + w.rank)


def barrier() -> None:
    """Wait for every worker (a no-op with no process group)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


READ_BATCH = 512  # rows per Ray Data batch of a stage's one read pass


def load_split(name: str, columns: list[str], *, batch_size: int = READ_BATCH) -> dict[str, torch.Tensor]:
    """Read this worker's share of dataset ``name`` into CPU tensors (one pass over Ray Data).

    Training datasets are split across workers by Ray Train; validation datasets are not, so every
    worker sees the whole validation split.
    """
    return read_shard(dataset_shard(name), columns, batch_size=batch_size)


def dataset_shard(name: str):
    """This worker's iterator over the run's dataset ``name`` (None when the run has none)."""
    run = session.current()
    if run is not None:
        return run.dataset_shard(name)
    return ray.train.get_dataset_shard(name)


def read_shard(shard, columns: list[str], *, batch_size: int = READ_BATCH) -> dict[str, torch.Tensor]:
    """One pass over a Train dataset shard into CPU tensors (``{}`` when the run has no such dataset)."""
    if shard is None:
        return {}
    return collect(shard.iter_torch_batches(batch_size=batch_size, device="cpu"), columns)


def load_train_val(w: "Worker", columns: list[str]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """This worker's training rows and, on rank 0 (which alone validates), every validation row.

    Rank 0 reads validation in a second thread while it reads training: each read is a Ray Data
    execution whose tasks mostly wait for worker processes to start, so the two overlap almost fully
    (on 2 cores, a smoke-sized trial's reads took 9 s each one after the other).
    """
    if not w.is_main:
        return load_split("train", columns), {}
    val_shard = dataset_shard("val")  # the run is looked up on this thread
    with ThreadPoolExecutor(1, thread_name_prefix="xmodal-val-read") as pool:
        val = pool.submit(read_shard, val_shard, columns)
        train = load_split("train", columns)
        return train, val.result()


def collect(batches: Iterable[dict[str, torch.Tensor]], columns: list[str]) -> dict[str, torch.Tensor]:
    """Concatenate ``columns`` of a stream of batches: ``{column: (N, ...)}``."""
    parts: dict[str, list[torch.Tensor]] = {c: [] for c in columns}
    for batch in batches:
        for c in columns:
            parts[c].append(batch[c])
    return {c: torch.cat(v) if v else torch.empty(0) for c, v in parts.items()}


def n_rows(data: dict[str, torch.Tensor]) -> int:
    return len(next(iter(data.values()))) if data else 0


def balanced_indices(labels: torch.Tensor, n: int, positive_fraction: float, gen: torch.Generator) -> torch.Tensor:
    """``n`` indices drawn with replacement so that ``positive_fraction`` of them are positives.

    Args:
        labels: ``(N,)`` 0/1 (NaN rows are never drawn).
    """
    pos = torch.nonzero(labels == 1).flatten()
    neg = torch.nonzero(labels == 0).flatten()
    if len(pos) == 0 or len(neg) == 0:
        usable = torch.cat([pos, neg])
        return usable[torch.randint(len(usable), (n,), generator=gen)]
    n_pos = round(n * positive_fraction)
    return torch.cat([pos[torch.randint(len(pos), (n_pos,), generator=gen)],
                      neg[torch.randint(len(neg), (n - n_pos,), generator=gen)]])[torch.randperm(n, generator=gen)]


def minibatches(data: dict[str, torch.Tensor], batch_size: int, *, seed: int, epoch: int,
                shuffle: bool = True, drop_last: bool = True, order: torch.Tensor | None = None,
                ) -> Iterator[dict[str, torch.Tensor]]:
    """Yield dicts of ``batch_size`` rows. ``order`` (e.g. from ``balanced_indices``) overrides shuffling."""
    n = n_rows(data)
    if order is None:
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
    n_batches = len(order) // batch_size if drop_last else math.ceil(len(order) / batch_size)
    if drop_last and n_batches == 0 and len(order) >= 2:  # tiny shards still train
        n_batches, batch_size = 1, len(order)
    for b in range(n_batches):
        idx = order[b * batch_size:(b + 1) * batch_size]
        yield {k: v[idx] for k, v in data.items()}


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def sum_losses(terms: dict[str, torch.Tensor]) -> torch.Tensor:
    """The total is the sum of every ``*_loss`` term (open_clip convention)."""
    return sum(v for k, v in terms.items() if k.endswith("_loss"))


@torch.no_grad()
def predict(fn: Callable[[dict[str, torch.Tensor]], torch.Tensor], data: dict[str, torch.Tensor],
            worker: Worker, batch_size: int = 256) -> np.ndarray:
    """Concatenate ``fn(batch)`` over ``data`` in order (evaluation mode is the caller's job)."""
    outs = []
    for batch in minibatches(data, batch_size, seed=0, epoch=0, shuffle=False, drop_last=False):
        with worker.autocast():
            outs.append(fn(to_device(batch, worker.device)).float().cpu())
    return torch.cat(outs).numpy() if outs else np.zeros(0)


@dataclass
class TrainState:
    """What a checkpoint holds: progress, the best-so-far weights and the metric history."""

    epoch: int = 0  # next epoch to run
    best_score: float = -math.inf
    best_state: dict[str, Any] | None = None
    history: list[dict] = field(default_factory=list)
    bad_epochs: int = 0


def resume(modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer, phase: str) -> TrainState:
    """Restore from the run's latest Ray Train checkpoint, if this run was interrupted before.

    ``phase`` names the stage training: a checkpoint that another stage wrote (in a run that trains
    several in a row) is not this stage's progress, so training starts afresh.
    """
    blob = _last_checkpoint()
    if blob is None or blob.get("phase", "") != phase:
        return TrainState()
    for name, m in modules.items():
        unwrap(m).load_state_dict(blob["modules"][name])
    optimizer.load_state_dict(blob["optimizer"])
    return blob["train_state"]


def _last_checkpoint() -> dict[str, Any] | None:
    run = session.current()
    if run is not None:
        return run.checkpoint()
    ckpt = ray.train.get_checkpoint()
    if ckpt is None:
        return None
    with ckpt.as_directory() as d:
        return torch.load(os.path.join(d, "state.pt"), map_location="cpu", weights_only=False)


def unwrap(m: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return m.module if hasattr(m, "module") else m


def prepare(net: torch.nn.Module) -> torch.nn.Module:
    """Move to this worker's device and wrap in DDP when there are several workers."""
    if session.current() is not None:
        return net  # in process: one CPU worker
    return ray.train.torch.prepare_model(net, parallel_strategy_kwargs={"find_unused_parameters": True})


def module_state(modules: dict[str, torch.nn.Module]) -> dict[str, Any]:
    return {k: {n: t.detach().cpu().clone() for n, t in unwrap(m).state_dict().items()} for k, m in modules.items()}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def end_epoch(worker: Worker, st: TrainState, metrics: dict[str, float], score: float,
              modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer, patience: int,
              phase: str) -> bool:
    """Track the best epoch (validation ``score``), checkpoint, report; return True to stop early."""
    improved = score > st.best_score or st.best_state is None
    if improved:
        st.best_score, st.best_state, st.bad_epochs = score, module_state(modules), 0
    else:
        st.bad_epochs += 1
    metrics = {**metrics, "score": score, "epoch": st.epoch, "best_score": st.best_score,
               "worker_peak_rss_mb": peak_rss_mb()}
    st.history.append(metrics)
    st.epoch += 1
    stop = bool(patience) and st.bad_epochs >= patience
    if worker.is_main:
        blob = {"modules": module_state(modules), "optimizer": optimizer.state_dict(), "train_state": st,
                "done": stop, "phase": phase}
        run = session.current()
        if run is not None:
            run.report(metrics, blob)
            return stop
        with tempfile.TemporaryDirectory() as d:
            torch.save(blob, os.path.join(d, "state.pt"))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))
    else:
        ray.train.report(metrics)
    return stop
