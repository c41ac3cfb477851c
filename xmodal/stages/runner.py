"""Driver side of a stage: reuse it from the store, or run its loop in a Ray Train ``TorchTrainer``.

The Train run is named ``<stage>-<key>``, so a stage interrupted mid-way resumes from its last
checkpoint when the same stage (same key) runs again, and a restarted Tune trial finds its own run.
``fit`` and ``save_stage`` also serve runs that train several stages (:mod:`xmodal.stages.align_finetune`).
"""

from __future__ import annotations

import os
import re
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import torch

import ray.train
from ray import exceptions as rx
from ray.train.torch import TorchTrainer

from xmodal.config import ExperimentConfig, ScalingConfig, to_dict
from xmodal.errors import ResourceError, user_error
from xmodal.stages import memory, session
from xmodal.stages.loop import TrainState
from xmodal.stages.store import StageOutput, StageStore
from xmodal.storage import redact_uri


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


# Worker failures a Train run recovers from (from its last checkpoint): a crashed worker, one whose
# process died (a kernel OOM kill looks the same). Node preemptions have a budget of their own in Ray
# Train (unlimited); bad input and a worker Ray's memory monitor killed are not retried
# (:class:`StopOnBadInput`): a retry would meet them again.
MAX_FAILURES = 1


@dataclass(frozen=True)
class Kill:
    """A Train worker that ran out of memory or whose process died."""

    who: str  # "Train worker rank 0 (pid 4242)"
    why: str
    retry: bool  # whether a retry may get past it (a death with no reason given: SIGKILL or a crash)

    def __str__(self) -> str:
        return f"{self.who} {self.why}"


def memory_kill(err: BaseException | None, rank: int | None = None) -> Kill | None:
    """The out-of-memory death behind ``err``, through Ray's wrappers (worker failures by rank, health
    checks, task errors' causes)."""
    stack, seen = [(err, rank)], set()
    while stack:
        e, r = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        kill = _kill(e, r)
        if kill is not None:
            return kill
        stack += [(getattr(e, a, None), r) for a in ("cause", "controller_failure", "health_check_failure",
                                                      "_base_exc", "__cause__", "__context__")]
        stack += list((x, k) for k, x in getattr(e, "worker_failures", {}).items())
    return None


def _kill(e: BaseException, rank: int | None) -> Kill | None:
    text = str(e)
    who = "a Train worker" if rank is None else f"Train worker rank {rank}"
    pid = re.search(r"\bpid[:=] ?(\d+)", text)
    who += f" (pid {pid.group(1)})" if pid else ""
    if isinstance(e, rx.OutOfMemoryError):
        node = re.search(r"was (\d[\d.]*GB / \d[\d.]*GB)", text)
        return Kill(who, "was killed by Ray's memory monitor: the node ran low on memory"
                    + (f" ({node.group(1)} in use)" if node else ""), retry=False)
    if isinstance(e, torch.OutOfMemoryError):
        return Kill(who, "ran out of GPU memory", retry=False)
    if isinstance(e, MemoryError):
        return Kill(who, "ran out of memory (MemoryError)", retry=True)
    died = isinstance(e, rx.ActorDiedError) and not e.preempted and not e.actor_init_failed
    if died or isinstance(e, rx.WorkerCrashedError):
        return Kill(who, "died (most often SIGKILL from the kernel's OOM killer)", retry=True)
    return None


class StopOnBadInput(ray.train.UserCallback):
    """Ends a Train run at once when a worker raised an xmodal error (a bad record, a config that does
    not fit) or was killed for memory: a retry would meet it again, after a whole Train start-up. Runs
    in the run's controller; what it raises ends the run, and :func:`fit` finds it again inside Ray's
    wrapper."""

    def after_exception(self, run_context, worker_exceptions: dict[int, Exception]) -> None:
        for rank, err in worker_exceptions.items():
            bad = user_error(err)
            if bad is not None:
                raise bad
            kill = memory_kill(err, rank)
            if kill is not None and not kill.retry:
                raise ResourceError(str(kill), detail="".join(traceback.format_exception(err)))


def preflight(stages: tuple[str, ...], cfg: ExperimentConfig, *, datasets: dict[str, Any] | None = None,
              loop_config: dict | None = None, filesystem=None, concurrent: int | None = None, label: str = "",
              verbose: bool = True) -> tuple[memory.Estimate, memory.Budget] | None:
    """Estimate a run's memory per worker (:func:`xmodal.stages.memory.estimate`), say it (``verbose``:
    one line), and refuse it when over budget (ResourceError). None where nothing could be estimated:
    that never stops a run."""
    try:
        est = memory.estimate(stages, cfg, datasets=datasets, loop_config=loop_config, filesystem=filesystem,
                              label=label)
        budget = memory.budget_for(cfg, concurrent=concurrent)
    except Exception as e:  # noqa: BLE001
        if verbose:
            print(f"[xmodal] {label or '+'.join(stages)}: memory not estimated ({type(e).__name__}: {e})")
        return None
    if verbose:
        notes = f"; {'; '.join(est.notes)}" if est.notes else ""
        print(f"[xmodal] {est.stage}: about {est.describe()} per worker, budget {memory.gb(budget.bytes)} "
              f"({budget.source}){notes}")
    memory.check(est, budget)
    return est, budget


def fit(name: str, loop: Callable[[dict], None], *, cfg: ExperimentConfig, store: StageStore,
        datasets: dict[str, Any], loop_config: dict[str, Any], callbacks: list | None = None,
        stages: tuple[str, ...] = (), concurrent_workers: int | None = None,
        verbose: bool = True) -> tuple[dict[str, Any], float]:
    """Run ``loop`` as the run ``name``, in this process for one CPU worker (:func:`in_process`) or on a
    ``TorchTrainer``; return its last checkpoint's blob and the seconds.

    ``datasets`` named ``train`` or ``*_train`` are split across the workers; the others (validation)
    reach every worker whole. First, the memory a worker will hold is estimated (``stages``: the stages
    ``loop`` trains, by default from its module) and a run over budget is refused
    (:mod:`xmodal.stages.memory`; ``concurrent_workers``: Train workers that share this node's memory,
    by default as many as fit in its CPUs). A worker that runs out of memory ends the run with one line
    (:class:`ResourceError`); the full error goes to ``<storage>/logs/<name>.log``.
    """
    stages = stages or memory.stages_of(loop)
    label = "+".join(stages) or name.split("-")[0]
    sized = preflight(stages, cfg, datasets=datasets, loop_config=loop_config, filesystem=store.storage.fs,
                      concurrent=concurrent_workers, label=label, verbose=verbose)
    if in_process(cfg.scaling):
        return _fit_in_process(name, loop, cfg=cfg, store=store, datasets=datasets, loop_config=loop_config,
                               callbacks=callbacks, label=label, sized=sized)
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
        kill = bad if isinstance(bad, ResourceError) else memory_kill(e) if bad is None else None
        if kill is not None:
            raise out_of_memory(name, label, kill, e, sized, store) from None
        if bad is not None:
            raise bad from None
        raise
    seconds = time.perf_counter() - t0
    if result.checkpoint is None:
        raise RuntimeError(f"{name} finished without a checkpoint (error: {result.error})")
    with result.checkpoint.as_directory() as d:
        blob = torch.load(os.path.join(d, "state.pt"), map_location="cpu", weights_only=False)
    return blob, seconds


def in_process(s: ScalingConfig) -> bool:
    """Whether a run of this scaling runs its loop in the calling process (:mod:`xmodal.stages.session`)."""
    return s.launcher == "in_process" or (s.launcher == "auto" and s.num_workers == 1 and not s.use_gpu)


def _fit_in_process(name: str, loop: Callable[[dict], None], *, cfg: ExperimentConfig, store: StageStore,
                    datasets: dict[str, Any], loop_config: dict[str, Any], callbacks: list | None, label: str,
                    sized) -> tuple[dict[str, Any], float]:
    """:func:`fit` for one CPU worker, in this process: no Train run to start. Bad input raises its own
    error here; a Python ``MemoryError`` ends the run with :func:`out_of_memory`'s one line."""
    run = session.InProcess(name, datasets, store.storage, on_report=session.tune_reporter(callbacks))
    t0 = time.perf_counter()
    try:
        with session.active(run):
            loop({**loop_config, "cfg": to_dict(cfg)})
    except MemoryError as e:
        raise out_of_memory(name, label, Kill("the in-process worker", "ran out of memory (MemoryError)", False),
                            e, sized, store) from None
    seconds = time.perf_counter() - t0
    blob = run.last_blob or run.checkpoint()  # a run resumed at its end reports nothing new
    if blob is None:
        raise RuntimeError(f"{name} finished without a checkpoint")
    return blob, seconds


def out_of_memory(name: str, stage: str, kill: Kill | ResourceError, err: BaseException,
                  sized: tuple[memory.Estimate, memory.Budget] | None, store: StageStore) -> ResourceError:
    """The one line that ends a run whose worker ran out of memory, with the full error written to
    ``<storage>/logs/<name>.log`` (named in the line)."""
    if sized is not None:
        est, budget = sized
        numbers = (f"; estimated {est.describe()} per worker, budget {memory.gb(budget.bytes)} "
                   f"({budget.source})")
        fix = memory.advice(est)
    else:
        numbers, fix = "", f"lower {stage.split('+')[-1]}.batch_size or give each worker more memory"
    detail = [getattr(kill, "detail", ""), "".join(traceback.format_exception(err))]
    detail += [f"Train worker rank {rank}:\n" + "".join(traceback.format_exception(e))
               for rank, e in getattr(err, "worker_failures", {}).items()]
    try:
        store.storage.write_bytes("\n\n".join(d for d in detail if d).encode(), "logs", f"{name}.log")
        where = f"full error in {redact_uri(store.storage.uri_of('logs', f'{name}.log'))}"
    except Exception as e:  # noqa: BLE001 — the one line matters more than the log
        where = f"log not written ({type(e).__name__}: {e})"
    return ResourceError(f"{stage}: {kill}{numbers}; {fix}; {where}".replace("\n", " "))


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
              meta: dict[str, Any], callbacks: list | None = None, concurrent_workers: int | None = None,
              verbose: bool = True) -> StageOutput:
    """Run ``loop`` unless ``(stage, key)`` is already in the store; save its best weights + meta."""
    if store.exists(stage, key):
        out = store.load(stage, key)
        if verbose:
            print(f"[xmodal] {stage}: reused {key}")
        return out
    blob, seconds = fit(f"{stage}-{key}", loop, cfg=cfg, store=store, datasets=datasets, loop_config=loop_config,
                        callbacks=callbacks, stages=(stage,), concurrent_workers=concurrent_workers,
                        verbose=verbose)
    out = save_stage(store, stage, key, blob["train_state"], blob["optimizer"], cfg=cfg, meta=meta, seconds=seconds)
    if verbose:
        say_trained(out)
    return out
