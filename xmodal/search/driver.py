"""Ray Tune + Optuna: one ``Tuner`` per pathology over the method's loss settings.

Three layers, kept apart as in Ray's Train/Tune examples:

- the per-worker train loops (``xmodal.stages``), which call ``ray.train.report`` every epoch;
- ``trial`` — the Tune function: applies the trial's dotted-key overrides to the base config and
  runs the stage chain, whose ``TorchTrainer`` runs forward per-epoch metrics to Tune through
  ``TuneReportCallback`` (so ASHA can stop a trial early);
- ``tune_pathology`` — the ``Tuner`` with ``OptunaSearch`` (TPE, seeded, define-by-run space, the
  published defaults evaluated first; ASHA-stopped trials recorded as PRUNED: ``xmodal.search.study``)
  and ASHA on validation AUROC.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from xmodal.config import ExperimentConfig, apply_overrides, from_dict, to_dict
from xmodal.errors import user_error
from xmodal.search.space import SearchSpace, clip_point, published_point
from xmodal.storage import Storage

METRIC, MODE = "val_auroc", "max"


@dataclass(frozen=True)
class SearchOptions:
    """How much to search and with what resources (the entry script's CLI fills this)."""

    run: str = "demo"
    num_samples: int = 8  # trials per pathology, the published-defaults trial included
    max_concurrent: int = 0  # 0 = as many as the cluster's logical CPUs allow
    workers_per_trial: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0  # fractional allowed, e.g. 0.25
    grace_period: int = 2  # ASHA: epochs every trial gets before it may be stopped
    reduction_factor: int = 2
    race_top: int = 2  # K: best distinct configs found that race the published defaults (search/race.py)
    race_seeds: int = 3  # seeds the race may spend on each candidate (fresh: not the search's)
    min_gain: float = 0.0  # the guard: AUROC the best found must beat the published defaults by (CI lower bound)
    seed: int = 0
    warm_start: bool = False  # seed each pathology's study with the previous pathologies' best points
    resume: bool = False
    max_failures: int = 2  # retries of a crashed trial
    storage: str = ""  # Tune/Optuna state; default <data.storage>/tune
    optuna_storage: str = ""  # e.g. postgresql://...; default sqlite in the Tune storage folder
    reports: str = "reports"
    tracking: str = ""  # --tracking: "mlflow" or "mlflow=URI" (xmodal.search.tracking); "" = off


def overrides_in(config: dict[str, Any]) -> dict[str, Any]:
    """The dotted-key overrides of a Tune trial's config: a search point's own keys, or a race run's
    ``{"refit": {...}}``."""
    return dict(config.get("refit", {})) or {k: v for k, v in config.items() if "." in k}


def trial(config: dict[str, Any], base: dict[str, Any]) -> None:
    """Tune function: one point of the space (or one race run) -> the chain -> final validation metrics."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from xmodal.stages.chain import run_chain

    cfg = apply_overrides(from_dict(base), overrides_in(config))
    t0 = time.time()
    res = run_chain(cfg, callbacks=[TuneReportCallback()], verbose=False)
    tune.report({**res.val, "final": 1, "seconds": time.time() - t0, "cached": float(all(res.reused.values())),
                 "reused_shared_stages": float(all(res.reused.get(s, True) for s in ("image_pretrain", "ecg_ssl"))),
                 **{f"stage_key.{s}": out.key for s, out in res.stages.items()}})  # tags of its MLflow run


def resources(opts: SearchOptions) -> dict[str, float]:
    """Logical CPUs (and GPUs) one trial uses in all: its Tune function plus its Train workers."""
    return {"CPU": 1 + opts.workers_per_trial * opts.cpus_per_worker,
            "GPU": opts.workers_per_trial * opts.gpus_per_worker}


DATA_CPUS_PER_TRIAL = 1.0


def max_concurrent(opts: SearchOptions, cluster: dict[str, float]) -> int:
    """Trials that fit, each with one logical CPU left for its Ray Data reads.

    Ray Data tasks run outside the trial and Train placement groups. A paused streaming read holds
    its CPU, so two trainers streaming train + val through one spare CPU can wait on each other
    forever (seen with 2 trials on 5 CPUs).
    """
    if opts.max_concurrent:
        return opts.max_concurrent
    need = resources(opts)
    by_cpu = math.floor(cluster.get("CPU", 1) / (need["CPU"] + DATA_CPUS_PER_TRIAL))
    by_gpu = math.floor(cluster.get("GPU", 0) / need["GPU"]) if need["GPU"] else by_cpu
    return max(1, min(by_cpu, by_gpu))


def base_for(cfg: ExperimentConfig, pathology: str, opts: SearchOptions) -> ExperimentConfig:
    return apply_overrides(cfg, {"data.pathology": pathology, "scaling.num_workers": opts.workers_per_trial,
                                 "scaling.cpus_per_worker": opts.cpus_per_worker,
                                 "scaling.use_gpu": opts.gpus_per_worker > 0,
                                 "scaling.gpus_per_worker": opts.gpus_per_worker})


@dataclass(frozen=True)
class DefineByRun:
    """The define-by-run space for ``OptunaSearch`` (a picklable callable: Tune checkpoints its searcher)."""

    space: SearchSpace
    method: str

    def __call__(self, t) -> None:
        self.space.suggest(t, self.method)


def _runner(base: ExperimentConfig):
    from ray import tune

    return tune.with_parameters(trial, base=to_dict(base))


TRIAL_FUNCTION_RESOURCES = {"CPU": 1.0}


def _trainable(base: ExperimentConfig, opts: SearchOptions):
    """The trial function holds one CPU. Its TorchTrainers reserve their workers' CPUs/GPUs in their own
    placement groups, outside the trial's, so requesting them here too would count them twice: with
    every logical CPU reserved, Train workers and Ray Data reads wait on each other forever."""
    from ray import tune

    return tune.with_resources(_runner(base), TRIAL_FUNCTION_RESOURCES)


def tune_pathology(base: ExperimentConfig, space: SearchSpace, opts: SearchOptions, *, storage: str, extra_points: list[dict] = (), callbacks: list | None = None,
                   concurrency: int = 1) -> tuple[pd.DataFrame, str, str]:
    """Run (or resume) the search for one pathology; returns (trials, optuna storage URL, study name)."""
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from xmodal.search.study import StudySearch

    name = f"{opts.run}-{base.data.pathology}"
    st = Storage(storage)
    root, fs = st.for_ray()
    trainable = _trainable(base, opts)
    db, study = optuna_location(opts, st, name)
    if (restored := _restored(opts, root, fs, name, trainable)) is not None:
        return _frame(restored.fit()), db, study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _drop_study(db, study)  # a fresh search never inherits a stale study of the same name
    points = [p for p in [published_point(base.method, base.align.lr), *extra_points]
              if p.get("loss.strategy", space.strategies[0]) in space.strategies]
    searcher = StudySearch(
        space=DefineByRun(space, base.method), metric=METRIC, mode=MODE,
        points_to_evaluate=[clip_point(p, space) for p in points],
        sampler=optuna.samplers.TPESampler(seed=opts.seed, n_startup_trials=max(2, opts.num_samples // 3)),
        storage=optuna.storages.RDBStorage(db), study_name=study)
    max_t = base.align.epochs + base.finetune.epochs + 1
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=max_t, grace_period=opts.grace_period,
                              reduction_factor=opts.reduction_factor)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, search_alg=searcher, scheduler=scheduler,
                                    num_samples=opts.num_samples, max_concurrent_trials=concurrency),
        run_config=_run_config(opts, root, fs, name, callbacks),
    )
    return _frame(tuner.fit()), db, study


def refit(configs: list[dict[str, Any]], base: ExperimentConfig, opts: SearchOptions, *, storage: str,
          tag: str, callbacks: list | None = None, concurrency: int = 1) -> pd.DataFrame:
    """Train each override set (one per config × seed) to the end, no early stopping; returns trials."""
    from ray import tune

    name = f"{opts.run}-{base.data.pathology}-{tag}"
    root, fs = Storage(storage).for_ray()
    trainable = _trainable(base, opts)
    if (restored := _restored(opts, root, fs, name, trainable)) is not None:
        return _frame(restored.fit())
    tuner = tune.Tuner(
        trainable,
        param_space={"refit": tune.grid_search(configs)},
        tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, max_concurrent_trials=concurrency),
        run_config=_run_config(opts, root, fs, name, callbacks),
    )
    return _frame(tuner.fit())


def _restored(opts: SearchOptions, root: str, fs, name: str, trainable):
    """The Tuner of the run ``name`` under ``root`` when ``--resume`` finds one there (finished trials
    kept, errored ones resumed); None otherwise."""
    from ray import tune

    path = f"{root}/{name}"
    if opts.resume and tune.Tuner.can_restore(path, storage_filesystem=fs):
        return tune.Tuner.restore(path, trainable=trainable, resume_errored=True, storage_filesystem=fs)
    return None


def _run_config(opts: SearchOptions, root: str, fs, name: str, callbacks: list | None):
    from ray import tune

    return tune.RunConfig(name=name, storage_path=root, storage_filesystem=fs, verbose=0, callbacks=callbacks or [],
                          failure_config=tune.FailureConfig(max_failures=opts.max_failures))


def _drop_study(db: str, study: str) -> None:
    import optuna

    try:
        optuna.delete_study(study_name=study, storage=db)
    except KeyError:  # no such study yet
        pass


def optuna_location(opts: SearchOptions, storage: Storage, name: str) -> tuple[str, str]:
    """Where the Optuna study lives: ``--optuna-storage``, else SQLite in the Tune storage folder, or, when
    that is an object store (SQLite needs a local file), in ``~/.cache/xmodal/optuna`` on the driver's node."""
    if opts.optuna_storage:
        return opts.optuna_storage, name
    return f"sqlite:///{local_folder(storage, 'optuna') / 'optuna.db'}", name


def local_folder(storage: Storage, what: str) -> Path:
    """A local folder for a search's SQLite files (Optuna's study, MLflow's runs): the Tune storage folder,
    or, when that is an object store, ``~/.cache/xmodal/<what>/<its path>`` on the driver's node."""
    if storage.is_local:
        folder = Path(storage.root)
    else:
        folder = Path.home() / ".cache" / "xmodal" / what / re.sub(r"[^A-Za-z0-9._-]+", "_", storage.root)
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve()


def _frame(results) -> pd.DataFrame:
    """One row per trial: its overrides, final metrics, status and error (if it crashed)."""
    rows = []
    for i, r in enumerate(results):
        over = overrides_in(r.config or {})
        m = r.metrics or {}
        done = m.get("final") == 1
        rows.append({"trial": i, **{f"param:{k}": v for k, v in over.items()},
                     "val_auroc": m.get("val_auroc") if done else None,
                     "val_auprc": m.get("val_auprc") if done else None,
                     "last_val_auroc": m.get("val_auroc"), "iterations": m.get("training_iteration", 0),
                     "seconds": m.get("time_total_s"), "status": "error" if r.error else
                     ("completed" if done else "stopped"), "error": _reason(r.error) if r.error else ""})
    return pd.DataFrame(rows)


def _reason(err: BaseException) -> str:
    """One line naming the root cause of a trial's failure (not Ray's wrapper around it)."""
    cause = user_error(err) or getattr(err, "cause", None) or err
    lines = [x for x in str(cause).splitlines() if x.strip()]
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"


def overrides_of(row: pd.Series) -> dict[str, Any]:
    """The dotted-key overrides stored in a trials row (NaN where a conditional param was absent)."""
    out = {}
    for col, v in row.items():
        if isinstance(col, str) and col.startswith("param:") and not (isinstance(v, float) and math.isnan(v)):
            out[col[len("param:"):]] = v.item() if hasattr(v, "item") else v
    return out
