"""Driver side of a stage: reuse it from the store, or run its loop in a Ray Train ``TorchTrainer``.

The Train run is named ``<stage>-<key>``, so a stage interrupted mid-way resumes from its last
checkpoint when the same stage (same key) runs again, and a restarted Tune trial finds its own run.
``fit`` and ``save_stage`` also serve runs that train several stages (:mod:`xmodal.stages.align_finetune`).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import torch

import ray.train
from ray.train.torch import TorchTrainer

from xmodal.config import ExperimentConfig, ScalingConfig, to_dict
from xmodal.errors import user_error
from xmodal.stages.loop import TrainState
from xmodal.stages.store import StageOutput, StageStore


def scaling_for(s: ScalingConfig) -> ray.train.ScalingConfig:
    gpus = (s.gpus_per_worker or 1.0) if s.use_gpu else 0.0
    resources = {"CPU": s.cpus_per_worker}
    if gpus:
        resources["GPU"] = gpus
    return ray.train.ScalingConfig(num_workers=s.num_workers, use_gpu=s.use_gpu, resources_per_worker=resources)


def ingest_options():
    """Ray Train's default ingest options, with rows in a fixed order: a worker then sees the same rows in
    the same order on every run (Ray Data's default lets parallel reads finish in any order), so one
    seed gives one result. Set here, not in the driver's ``DataContext``: a Tune trial runs in its own
    process, whose context would not carry it."""
    opts = ray.train.DataConfig.default_ingest_options()
    opts.preserve_order = True
    return opts


# Worker failures a Train run recovers from (from its last checkpoint): a crashed or OOM-killed worker.
# Node preemptions have a budget of their own in Ray Train (unlimited), and bad input is not retried
# (:class:`StopOnBadInput`).
MAX_FAILURES = 1


class StopOnBadInput(ray.train.UserCallback):
    """Ends a Train run at once when a worker raised an xmodal error (a bad record, a config that does
    not fit): a retry would meet it again, after a whole Train start-up. Runs in the run's controller;
    what it raises ends the run, and :func:`fit` finds the error again inside Ray's wrapper."""

    def after_exception(self, run_context, worker_exceptions: dict[int, Exception]) -> None:
        for err in worker_exceptions.values():
            bad = user_error(err)
            if bad is not None:
                raise bad


def fit(name: str, loop: Callable[[dict], None], *, cfg: ExperimentConfig, store: StageStore,
        datasets: dict[str, Any], loop_config: dict[str, Any],
        callbacks: list | None = None) -> tuple[dict[str, Any], float]:
    """Run ``loop`` on a ``TorchTrainer`` named ``name``; return its last checkpoint's blob and the seconds.

    ``datasets`` named ``train`` or ``*_train`` are split across the workers; the others (validation)
    reach every worker whole.
    """
    storage_path, storage_fs = store.storage.for_ray("ray_train")
    trainer = TorchTrainer(
        loop,
        train_loop_config={**loop_config, "cfg": to_dict(cfg)},
        scaling_config=scaling_for(cfg.scaling),
        datasets=datasets,
        dataset_config=ray.train.DataConfig(datasets_to_split=[n for n in datasets if n.split("_")[-1] == "train"],
                                            execution_options=ingest_options()),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=storage_path,
            storage_filesystem=storage_fs,
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
            failure_config=ray.train.FailureConfig(max_failures=MAX_FAILURES),
            callbacks=[StopOnBadInput(), *(callbacks or [])],
        ),
    )
    t0 = time.perf_counter()
    try:
        result = trainer.fit()
    except ray.train.TrainingFailedError as e:
        bad = user_error(e)  # bad input found in a worker: its one-line error, not Ray's wrapper
        if bad is not None:
            raise bad from None
        raise
    seconds = time.perf_counter() - t0
    if result.checkpoint is None:
        raise RuntimeError(f"{name} finished without a checkpoint (error: {result.error})")
    with result.checkpoint.as_directory() as d:
        blob = torch.load(os.path.join(d, "state.pt"), map_location="cpu", weights_only=False)
    return blob, seconds


def save_stage(store: StageStore, stage: str, key: str, st: TrainState, optimizer: dict[str, Any] | None, *,
               cfg: ExperimentConfig, meta: dict[str, Any], seconds: float) -> StageOutput:
    """Store a finished stage: its best-on-validation weights, optimizer state and meta (with metrics)."""
    return store.save(stage, key, state=st.best_state, optimizer=optimizer,
                      meta={**meta, "config": to_dict(cfg), "seconds": round(seconds, 2),
                            "metrics": {"best": best_epoch(st), "history": st.history}})


def best_epoch(st: TrainState) -> dict[str, Any]:
    return max(st.history, key=lambda m: m.get("score", -1e9)) if st.history else {}


def say_trained(out: StageOutput) -> None:
    best, hist = out.metrics.get("best", {}), out.metrics.get("history", [])
    shown = {k: round(v, 4) for k, v in best.items() if k.startswith("val_") and isinstance(v, float)}
    print(f"[xmodal] {out.stage}: trained {out.key} in {len(hist)} epochs, {out.meta.get('seconds', 0):.1f}s; "
          f"best {shown}")


def run_stage(stage: str, key: str, loop: Callable[[dict], None], *, cfg: ExperimentConfig,
              store: StageStore, datasets: dict[str, Any], loop_config: dict[str, Any],
              meta: dict[str, Any], callbacks: list | None = None, verbose: bool = True) -> StageOutput:
    """Run ``loop`` unless ``(stage, key)`` is already in the store; save its best weights + meta."""
    if store.exists(stage, key):
        out = store.load(stage, key)
        if verbose:
            print(f"[xmodal] {stage}: reused {key}")
        return out
    blob, seconds = fit(f"{stage}-{key}", loop, cfg=cfg, store=store, datasets=datasets, loop_config=loop_config,
                        callbacks=callbacks)
    out = save_stage(store, stage, key, blob["train_state"], blob["optimizer"], cfg=cfg, meta=meta, seconds=seconds)
    if verbose:
        say_trained(out)
    return out
