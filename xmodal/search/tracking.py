"""A search in MLflow (``--tracking mlflow[=URI]``), and where its Optuna study and TensorBoard files are.

In MLflow, a search is the experiment named after its run (``--run``). Each pathology is a parent run
with its base config (``base.*`` params), the selection facts (``selection.*``, ``recommended.*``,
validation metrics) and ``recommended.yaml`` + ``summary.md`` as artifacts. Under it, one child run per
Tune trial (tag ``phase``: ``search``, or ``race-<n>`` with the race's ``candidate``): its searched
settings as params (dotted keys, as ``--set`` takes them), every epoch's validation metrics (step: Tune's
``training_iteration``), its stage keys as ``stage_key.*`` tags, and an ``outcome`` (``completed``,
``pruned`` by ASHA: status KILLED, or ``failed``); and one ``final`` child with the test metrics of the
recommended config, the published defaults and the ECG-only baseline.

The default URI is a SQLite database next to the Optuna study (``<Tune storage>/mlflow.db``, artifacts
in ``mlartifacts/`` beside it; on an object-store storage, ``~/.cache/xmodal/mlflow/`` on the driver's
node): MLflow 3 refuses its old ``./mlruns`` file store unless ``MLFLOW_ALLOW_FILE_STORE=true``. An
``http(s)://`` URI logs to a tracking server. No URI, path or credential is logged: configs' paths
appear as file names only. A tracking error during a search prints one line and the search goes on.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from ray.tune.logger import LoggerCallback

from xmodal.errors import ConfigError
from xmodal.storage import SECRET_OPTIONS, Storage, redact_uri

INSTALL = "--tracking mlflow needs MLflow: pip install 'xmodal[tracking]'"
PATH_KEYS = ("data.manifest", "model.image_weights")  # logged as file names; data.storage not at all
NOT_METRICS = {"training_iteration", "timestamp", "pid", "done", "final", "time_this_iter_s", "time_since_restore",
               "iterations_since_restore", "timesteps_total", "episodes_total", "timesteps_since_restore"}


def parse(value: str) -> str:
    """The URI of ``--tracking mlflow[=URI]`` ("" for the default); a one-line error for anything else or
    without MLflow installed."""
    kind, sep, uri = value.partition("=")
    if kind != "mlflow" or (sep and not uri):
        raise ConfigError(f"--tracking {redact_uri(value)}: expected mlflow or mlflow=URI "
                          "(sqlite:///PATH.db, http://HOST:PORT)")
    require_mlflow()
    return uri


def require_mlflow():
    try:
        import mlflow
    except ImportError:
        raise ConfigError(INSTALL) from None
    return mlflow


def location(uri: str, tune_storage: str) -> tuple[str, str | None]:
    """``(tracking URI, artifact location of a new experiment)``: the default SQLite store under the
    search's storage, a local SQLite URI with its artifacts beside the database, or ``uri`` as given
    (a server or database chooses its own artifact location)."""
    from xmodal.search.driver import local_folder

    if not uri:
        folder = local_folder(Storage(tune_storage), "mlflow")
        return f"sqlite:///{folder / 'mlflow.db'}", (folder / "mlartifacts").as_uri()
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):]).expanduser().absolute()
        db.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{db}", (db.parent / "mlartifacts").as_uri()
    return uri, None


def _relative(path: str) -> str:
    p = Path(path)
    return str(p.relative_to(Path.cwd())) if p.is_absolute() and p.is_relative_to(Path.cwd()) else path


def shown(url: str) -> str:
    """``url`` for a console line: credentials removed, a SQLite path under the working directory relative."""
    if url.startswith("sqlite:///"):
        return f"sqlite:///{_relative(url[len('sqlite:///'):])}"
    return redact_uri(url)


def watch_lines(opts, tracker: "Tracker | None") -> list[str]:
    """The commands that show a running search: its Optuna study, Tune's TensorBoard files, MLflow."""
    from xmodal.search.driver import optuna_location

    st = Storage(opts.storage)
    db = optuna_location(opts, st, opts.run)[0]
    logdir = _relative(st.root) if st.is_local else redact_uri(st.uri)
    lines = [f"Optuna study: optuna-dashboard {shown(db)}", f"TensorBoard: tensorboard --logdir {logdir}"]
    if tracker is not None:
        ui = (f"mlflow ui --backend-store-uri {shown(tracker.uri)}" if tracker.uri.startswith("sqlite:")
              else shown(tracker.uri))
        lines.append(f"MLflow experiment '{tracker.run}': {ui}")
    return lines


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@contextlib.contextmanager
def guarded(what: str) -> Iterator[None]:
    """Log, or say in one line that ``what`` was not logged: tracking never stops a search."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 — a tracking server's hiccup must not cost the search
        print(f"[xmodal] MLflow: {what} not logged ({_one_line(e)})", file=sys.stderr, flush=True)


def _one_line(e: BaseException) -> str:
    """The first line of ``e``'s message, without the credentials of any URI in it."""
    text = re.sub(r"(?<=://)[^/@\s]+@", "", str(e))
    text = re.sub(rf"\b({'|'.join(SECRET_OPTIONS)})=[^&\s]*&?", "", text)
    lines = [x for x in text.splitlines() if x.strip()]
    return f"{type(e).__name__}: {lines[0] if lines else ''}"


def param_value(v: Any) -> str:
    v = v.item() if hasattr(v, "item") else v
    return redact_uri(v) if isinstance(v, str) and "://" in v else str(v)


def base_params(cfg) -> dict[str, str]:
    """A config's settings as ``base.<dotted key>`` params: no storage, paths as file names."""
    from xmodal.config import flatten

    out = {}
    for k, v in flatten(cfg).items():
        if k == "data.storage":
            continue
        if k in PATH_KEYS and v:
            v = redact_uri(str(v)).split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        out[f"base.{k}"] = param_value(v)
    return out


def metrics_of(result: dict[str, Any]) -> dict[str, float]:
    """The numbers a trial reported (its epoch's validation metrics...), less Tune's bookkeeping."""
    return {k: float(v) for k, v in result.items()
            if isinstance(v, numbers.Real) and not isinstance(v, bool) and k not in NOT_METRICS}


def config_key(overrides: dict[str, Any]) -> str:
    return json.dumps({k: param_value(v) for k, v in overrides.items()}, sort_keys=True)


def _log(client, run_id: str, *, metrics: dict[str, float] | None = None, params: dict[str, Any] | None = None,
         tags: dict[str, str] | None = None, step: int = 0) -> None:
    """One ``log_batch`` per 100 params/tags (MLflow's limit per request)."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    ms = [Metric(k, float(v), now, step) for k, v in (metrics or {}).items() if v is not None]
    ps = [Param(k, param_value(v)) for k, v in (params or {}).items() if v is not None]
    ts = [RunTag(k, str(v)[:8000]) for k, v in (tags or {}).items() if v is not None]
    for i in range(0, max(len(ms), len(ps), len(ts), 1), 100):
        if ms[i:i + 100] or ps[i:i + 100] or ts[i:i + 100]:
            client.log_batch(run_id, metrics=ms[i:i + 100], params=ps[i:i + 100], tags=ts[i:i + 100])


def _end(client, run_id: str, status: str) -> None:
    """End a run without MLflow's "View run at <server URL>" lines on stdout (one per trial, and the URL)."""
    with _env(MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT="true"):
        client.set_terminated(run_id, status)


class Tracker:
    """The MLflow experiment of one search (checked on creation: a bad URI or an unreachable server stops
    the search in one line, before Ray starts)."""

    def __init__(self, value: str, run: str, tune_storage: str):
        uri = parse(value)  # checks that MLflow is installed
        from mlflow import MlflowClient

        self.uri, artifacts = location(uri, tune_storage)
        self.run = run  # the experiment's name
        try:
            self.client = MlflowClient(self.uri)  # a file store (refused by MLflow 3) fails here
            with _env(MLFLOW_HTTP_REQUEST_MAX_RETRIES="1", MLFLOW_HTTP_REQUEST_TIMEOUT="20"):
                exp = self.client.get_experiment_by_name(run)
                if exp is None:
                    self.experiment_id = self.client.create_experiment(run, artifact_location=artifacts)
                else:
                    self.experiment_id = exp.experiment_id
                    if exp.lifecycle_stage == "deleted":
                        self.client.restore_experiment(exp.experiment_id)
        except Exception as e:  # noqa: BLE001 — MLflow's, the store's or the connection's: one line
            raise ConfigError(f"--tracking mlflow={shown(self.uri)}: {_one_line(e)}") from None

    @classmethod
    def of(cls, opts) -> "Tracker | None":
        return cls(opts.tracking, opts.run, opts.storage) if opts.tracking else None

    @contextlib.contextmanager
    def pathology(self, pathology: str, cfg, opts) -> Iterator["PathologyRun | None"]:
        """The pathology's parent run (None when MLflow refused it), ended FINISHED, or FAILED (KILLED on
        Ctrl-C) when the block raises. With ``--resume``, the interrupted search's parent run goes on."""
        run_id = None
        with guarded(f"{pathology}'s parent run"):
            run_id = self._parent(pathology, cfg, opts)
        try:
            yield PathologyRun(self, run_id, pathology) if run_id else None
        except BaseException as e:
            if run_id:
                with guarded("the run's end"):
                    _end(self.client, run_id, "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
            raise
        if run_id:
            with guarded("the run's end"):
                _end(self.client, run_id, "FINISHED")

    def _parent(self, pathology: str, cfg, opts) -> str:
        if opts.resume:
            found = self.client.search_runs([self.experiment_id], f"tags.run = '{self.run}' and tags.pathology = "
                                                                  f"'{pathology}' and tags.phase = 'pathology'",
                                            max_results=1)
            if found:
                self.client.update_run(found[0].info.run_id, status="RUNNING")
                return found[0].info.run_id
        tags = {"run": self.run, "pathology": pathology, "phase": "pathology", "method": cfg.method}
        run_id = self.client.create_run(self.experiment_id, run_name=pathology, tags=tags).info.run_id
        search = {f"search.{k}": getattr(opts, k) for k in ("num_samples", "grace_period", "race_top", "race_seeds",
                                                             "min_gain", "seed")}
        _log(self.client, run_id, params={**base_params(cfg), **search})
        return run_id


ROLES = {"recommended": "recommended", "published": "published", "baseline": "ecg_only"}  # predict_many's groups
VAL = {"mean_val_auroc": "val_auroc", "sd_val_auroc": "val_auroc_sd", "mean_val_auprc": "val_auprc", "n_ok": "seeds"}


class PathologyRun:
    """One pathology's parent run: Tune callbacks for its trials, the final evaluation, the selection."""

    def __init__(self, tracker: Tracker, run_id: str, pathology: str):
        self.tracker, self.run_id, self.pathology = tracker, run_id, pathology

    def callbacks(self, phase: str, names: list[tuple[dict, str]] = ()) -> list:
        """Tune callbacks that log each trial as a child run tagged ``phase`` (and ``candidate``: a race
        run's name in ``names``, by its overrides)."""
        t = self.tracker
        return [TrialRuns(t.uri, t.experiment_id, self.run_id, {"run": t.run, "pathology": self.pathology,
                                                                "phase": phase},
                          {config_key(over): name for over, name in names})]

    def final(self, test: dict[str, dict], recommended: dict[str, Any], seeds: dict[str, list[int]]) -> None:
        """The final evaluation's child run: the test metrics of each role (``predict_many``'s groups)."""
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        c, t = self.tracker.client, self.tracker
        with guarded("the final evaluation"):
            found = c.search_runs([t.experiment_id], f"tags.mlflow.parentRunId = '{self.run_id}' and "
                                                     "tags.phase = 'final'", max_results=1)  # a resumed search's
            tags = {MLFLOW_PARENT_RUN_ID: self.run_id, "run": t.run, "pathology": self.pathology, "phase": "final"}
            run_id = (found[0] if found else c.create_run(t.experiment_id, run_name="final", tags=tags)).info.run_id
            metrics = {f"{ROLES[role]}.test_{k}": v for role, g in test.items()
                       for k, v in metrics_of(g["metrics"]).items()}
            _log(c, run_id, metrics=metrics, params={
                **recommended, **{f"seeds.{ROLES[r]}": ",".join(map(str, s)) for r, s in seeds.items()}})
            _end(c, run_id, "FINISHED")

    def selection(self, summary: dict[str, Any], recommended: dict[str, Any], files: list[Path]) -> None:
        """The parent's selection facts and validation metrics, and ``files`` as its artifacts."""
        from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

        c, sel = self.tracker.client, summary["selection"]
        metrics = {f"{ROLES[role]}.{VAL[k]}": v for role, vals in summary["val"].items()
                   for k, v in metrics_of(vals).items() if k in VAL}
        for d in ("delta_vs_published", "delta_vs_ecg_only"):
            metrics.update({f"{d}.{k}": v for k, v in (sel.get(d) or {}).items() if isinstance(v, (int, float))})
        metrics.update({k: summary[k] for k in ("trials", "completed", "stopped", "errors", "minutes")})
        image_only = summary.get("image_only_val_auroc")
        if isinstance(image_only, float) and math.isfinite(image_only):
            metrics["image_only.val_auroc"] = image_only
        with guarded("the selection"):
            _log(c, self.run_id, metrics=metrics,
                 params={"selection.chosen": sel["chosen"], "selection.rule": sel["rule"],
                         **{f"recommended.{k}": v for k, v in recommended.items()}},
                 tags={"chosen": sel["chosen"], MLFLOW_RUN_NOTE: sel["sentence"]})
        for f in files:
            with guarded(f.name):
                c.log_artifact(self.run_id, str(f))


class TrialRuns(LoggerCallback):
    """Tune callback: each trial of a Tune run is a child run of ``parent`` (MLflow nests a run under the
    one its ``mlflow.parentRunId`` tag names). Holds strings only, so Tune can pickle it with its state;
    a trial retried or resumed keeps its run (found by its ``trial_id`` tag)."""

    def __init__(self, uri: str, experiment_id: str, parent: str, tags: dict[str, str], names: dict[str, str]):
        self.uri, self.experiment_id, self.parent, self.tags, self.names = uri, experiment_id, parent, tags, names
        self._client = None
        self._runs: dict[str, str] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_client": None}

    @property
    def client(self):
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(self.uri)
        return self._client

    def _run_of(self, trial) -> str:
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        from xmodal.search.driver import overrides_in

        if trial.trial_id not in self._runs:
            query = (f"tags.mlflow.parentRunId = '{self.parent}' and tags.phase = '{self.tags['phase']}' and "
                     f"tags.trial_id = '{trial.trial_id}'")
            found = self.client.search_runs([self.experiment_id], query, max_results=1)
            if found:
                self._runs[trial.trial_id] = found[0].info.run_id
            else:
                over = overrides_in(trial.config or {})
                tags = {**self.tags, MLFLOW_PARENT_RUN_ID: self.parent, "trial_id": trial.trial_id}
                if config_key(over) in self.names:
                    tags["candidate"] = self.names[config_key(over)]
                index = str(getattr(trial, "experiment_tag", "")).split("_", 1)[0]  # Tune's trial number
                name = f"{self.tags['phase']}-{index if index.isdigit() else trial.trial_id}"
                run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
                self._runs[trial.trial_id] = run.info.run_id
                _log(self.client, run.info.run_id, params=over)
        return self._runs[trial.trial_id]

    def log_trial_start(self, trial) -> None:
        with guarded(f"trial {trial.trial_id}"):
            self._run_of(trial)

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        with guarded(f"a result of trial {trial.trial_id}"):
            _log(self.client, self._run_of(trial), metrics=metrics_of(result),
                 step=int(result.get("training_iteration") or 0))

    def log_trial_end(self, trial, failed: bool = False) -> None:
        last = trial.last_result or {}
        outcome = "completed" if last.get("final") == 1 else "failed" if failed else "pruned"
        tags = {"outcome": outcome, **{k: v for k, v in last.items() if k.startswith("stage_key.")}}
        with guarded(f"the end of trial {trial.trial_id}"):
            run_id = self._run_of(trial)
            _log(self.client, run_id, tags=tags)
            _end(self.client, run_id, {"completed": "FINISHED", "failed": "FAILED"}.get(outcome, "KILLED"))
