"""A smoke search seen where researchers look: MLflow (its default SQLite store, and a real tracking
server over HTTP), the Optuna study through ``optuna.load_study``, and Tune's TensorBoard event files.

Each is read back with its own library and checked against what the search wrote (``trials.parquet``,
``race.parquet``, ``summary.json``). MLflow 3 refuses its old ``./mlruns`` file store (unless
``MLFLOW_ALLOW_FILE_STORE=true``), so the search's own "file store" is a SQLite file under its storage.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.integration
mlflow = pytest.importorskip("mlflow", reason="the tracking extra: pip install -e '.[tracking]'")

PATHOLOGY = "cardiomegaly"
STATE = {"completed": "COMPLETE", "stopped": "PRUNED", "error": "FAIL"}  # trials.parquet's status -> Optuna's
OUTCOME = {"completed": "completed", "stopped": "pruned", "error": "failed"}  # -> the MLflow run's outcome tag


@pytest.fixture(scope="module")
def storage(stage_cache, tmp_path_factory) -> Path:
    """A stage cache of the module's own, seeded with the session's shards, features and stages (the chain
    tests fill them when they run first): the searches here start at the trials, and what they train stays
    out of the session's cache (the job-submit test's search must still train there)."""
    own = tmp_path_factory.mktemp("tracked") / "cache"
    for folder in ("shards", "features", "stages"):
        if (stage_cache / folder).is_dir():
            shutil.copytree(stage_cache / folder, own / folder)
    return own


def _search(run: str, cohort: Path, storage: Path, reports: Path, *extra: str) -> None:
    from xmodal.search import cli

    code = cli.main(["--smoke-test", "--data", str(cohort), "--storage", str(storage), "--reports", str(reports),
                     "--run", run, *extra])
    assert code == 0


def _params(row: pd.Series) -> dict[str, str]:
    from xmodal.search.driver import overrides_of
    from xmodal.search.tracking import param_value

    return {k: param_value(v) for k, v in overrides_of(row).items()}


def _check_runs(client, run: str, reports: Path, tmp_path: Path) -> None:
    """One parent per pathology; under it one child per search trial (its params, every result as a
    metric step), one per race run and the final evaluation; the parent holds the report's files."""
    exp = client.get_experiment_by_name(run)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert [(p.info.run_name, p.info.status) for p in parents] == [(PATHOLOGY, "FINISHED")]
    parent = parents[0]
    out = reports / run
    facts = json.loads((out / "summary.json").read_text())["pathologies"][PATHOLOGY]
    assert parent.data.params["selection.chosen"] == facts["chosen"] == parent.data.tags["chosen"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1

    trials = pd.read_parquet(out / PATHOLOGY / "trials.parquet")
    search = [r for r in children if r.data.tags["phase"] == "search"]
    assert len(search) == len(trials)
    for _, row in trials.iterrows():
        child, = [r for r in search if r.data.params == _params(row)]
        history = client.get_metric_history(child.info.run_id, "val_auroc")
        assert sorted({m.step for m in history}) == list(range(1, int(row["iterations"]) + 1))  # every result
        assert child.data.tags["outcome"] == OUTCOME[row["status"]]
        if row["status"] == "completed":
            assert math.isclose(child.data.metrics["val_auroc"], row["val_auroc"])
            assert {"stage_key.align", "stage_key.finetune"} <= set(child.data.tags)
    race = pd.read_parquet(out / PATHOLOGY / "race.parquet")
    racing = [r for r in children if r.data.tags["phase"].startswith("race-")]
    assert len(racing) == len(race)
    assert sorted(r.data.tags["candidate"] for r in racing) == sorted(race["candidate"])
    final, = [r for r in children if r.data.tags["phase"] == "final"]
    for role, test in facts["test_auroc"].items():  # recommended, published, ecg_only
        got = final.data.metrics[f"{role}.test_auroc"]
        assert math.isnan(got) if test["estimate"] is None else got == pytest.approx(test["estimate"], abs=1e-4)
    assert parent.data.metrics["recommended.val_auroc"] == pytest.approx(facts["recommended_val_auroc"], abs=1e-4)

    assert sorted(a.path for a in client.list_artifacts(parent.info.run_id)) == ["recommended.yaml", "summary.md"]
    got = Path(client.download_artifacts(parent.info.run_id, "recommended.yaml", str(tmp_path)))
    assert got.read_text() == (out / PATHOLOGY / "recommended.yaml").read_text()
    logged = [v for r in runs for v in [*r.data.params.values(), *r.data.tags.values()]]
    assert not [v for v in logged if str(tmp_path) in v or "/tmp/" in v]  # no paths in params or tags


@pytest.mark.timeout(900)
def test_a_smoke_search_is_in_mlflow_optuna_and_tensorboard(ray_local, tiny_cohort, storage, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, reports = "tracked", tmp_path / "reports"
    _search(run, tiny_cohort, storage, reports, "--tracking", "mlflow")
    tune = storage / "tune"

    # MLflow: the default store, a SQLite file next to the Optuna study.
    _check_runs(mlflow.MlflowClient(f"sqlite:///{tune / 'mlflow.db'}"), run, reports, tmp_path)

    # Optuna: every trial's state, params and per-epoch values (README: optuna-dashboard sqlite:///…/optuna.db).
    import optuna

    study = optuna.load_study(study_name=f"{run}-{PATHOLOGY}", storage=f"sqlite:///{tune / 'optuna.db'}")
    trials = pd.read_parquet(reports / run / PATHOLOGY / "trials.parquet")
    assert len(study.trials) == len(trials)
    for _, row in trials.iterrows():
        t, = [t for t in study.trials if {k: str(v) for k, v in t.params.items()} == _params(row)]
        assert t.state.name == STATE[row["status"]]
        # Every epoch is an intermediate value. A completed trial's final report is its value (and an
        # intermediate one too, unless it came at ASHA's max_t, where Ray tells the searcher only of the stop);
        # a pruned trial's values include the epoch ASHA stopped it at.
        steps, n = set(t.intermediate_values), int(row["iterations"])
        if row["status"] == "completed":
            assert set(range(1, n)) <= steps <= set(range(1, n + 1)), (steps, n)
        else:
            assert steps == set(range(1, n + 1)), (steps, n)
        if row["status"] == "completed":
            assert math.isclose(t.value, row["val_auroc"])
    assert any(t.intermediate_values for t in study.trials)

    # TensorBoard: Tune's event files, one folder per trial (README: tensorboard --logdir …/tune).
    folders = sorted(p.parent for p in (tune / f"{run}-{PATHOLOGY}").glob("*/events.out.tfevents.*"))
    assert len(set(folders)) == len(trials)
    for folder in folders:
        events = EventAccumulator(str(folder))
        events.Reload()
        assert [s.step for s in events.Scalars("ray/tune/val_auroc")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real MLflow tracking server on loopback (one worker), stopped after the test."""
    port, log = _free_port(), tmp_path / "server.log"  # a file: a pipe nobody reads would fill and block it
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
             "--artifacts-destination", str(tmp_path / "server-artifacts")],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail("mlflow server did not answer /health within 180 s")
            time.sleep(1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.timeout(900)
def test_a_smoke_search_logs_to_a_tracking_server_over_http(ray_local, tiny_cohort, storage, mlflow_server, tmp_path):
    run, reports = "tracked-http", tmp_path / "reports"
    _search(run, tiny_cohort, storage, reports, "--tracking", f"mlflow={mlflow_server}", "--num-samples", "1",
            "--race-seeds", "1")
    _check_runs(mlflow.MlflowClient(mlflow_server), run, reports, tmp_path)
    assert list((tmp_path / "server-artifacts").rglob("recommended.yaml"))  # uploaded through the server
