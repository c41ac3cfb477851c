"""``--tracking mlflow``: the flag's value, the one-line refusals, what is logged and how runs nest, read
back with MLflow's own client from a SQLite store in a temporary folder. No Ray: Tune's callbacks are
called with stand-in trials (the smoke searches in tests/integration/test_tracking.py run the real ones)."""

from __future__ import annotations

import pickle
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from xmodal.config import apply_overrides
from xmodal.errors import ConfigError
from xmodal.search import cli, tracking
from xmodal.search.driver import SearchOptions, local_folder, overrides_in

mlflow = pytest.importorskip("mlflow", reason="the tracking extra: pip install -e '.[tracking]'")

SECRET = "s3://AKIAXMODAL:VERYSECRET@bucket/cohort/manifest.parquet?access_key=AKIAXMODAL&secret_key=VERYSECRET"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite store for the module (creating one runs MLflow's migrations: seconds); tests use their
    own experiments in it."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_flag_takes_mlflow_or_mlflow_uri():
    assert tracking.parse("mlflow") == ""
    assert tracking.parse("mlflow=http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    for bad in ("wandb", "mlflow=", "mlflow:http://x"):
        with pytest.raises(ConfigError, match="expected mlflow or mlflow=URI"):
            tracking.parse(bad)
    with pytest.raises(ConfigError) as e:
        tracking.parse("mlfow=http://user:VERYSECRET@host")
    assert "VERYSECRET" not in str(e.value)


def test_without_mlflow_the_flag_stops_in_one_line_saying_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    monkeypatch.setattr("xmodal.runtime.ensure_ray", lambda *a, **k: pytest.fail("Ray started"))
    with pytest.raises(ConfigError) as e:
        tracking.parse("mlflow")
    assert str(e.value) == "--tracking mlflow needs MLflow: pip install 'xmodal[tracking]'"
    assert cli.main(["--smoke-test", "--tracking", "mlflow"]) == 2
    assert capsys.readouterr().err == f"error: {e.value}\n"


def test_the_default_store_is_sqlite_next_to_the_optuna_study(tmp_path, monkeypatch):
    uri, artifacts = tracking.location("", str(tmp_path / "tune"))
    assert uri == f"sqlite:///{tmp_path / 'tune' / 'mlflow.db'}"
    assert artifacts == (tmp_path / "tune" / "mlartifacts").as_uri()
    uri, artifacts = tracking.location(f"sqlite:///{tmp_path}/elsewhere/m.db", "unused")
    assert artifacts == (tmp_path / "elsewhere" / "mlartifacts").as_uri()
    assert tracking.location("http://127.0.0.1:5000", "unused") == ("http://127.0.0.1:5000", None)
    # An object-store search storage: SQLite needs a local file, so it lives on the driver's node.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    folder = local_folder(SimpleNamespace(is_local=False, root="bucket/xmodal/tune"), "mlflow")
    assert folder == (tmp_path / "home" / ".cache" / "xmodal" / "mlflow" / "bucket_xmodal_tune").resolve()


def test_params_are_dotted_keys_and_nothing_secret_or_local_is_logged():
    assert overrides_in({"loss.tau": 0.1, "other": 1}) == {"loss.tau": 0.1}
    assert overrides_in({"refit": {"loss.tau": 0.1, "align.seed": 2}}) == {"loss.tau": 0.1, "align.seed": 2}
    cfg = apply_overrides(tracking_cfg(), {"data.manifest": SECRET, "data.storage": SECRET.rsplit("/", 1)[0],
                                           "model.image_weights": "/home/someone/weights/enc.pt"})
    params = tracking.base_params(cfg)
    assert params["base.data.manifest"] == "manifest.parquet" and params["base.model.image_weights"] == "enc.pt"
    assert "base.data.storage" not in params and params["base.loss.tau"] == str(cfg.loss.tau)
    assert not [v for v in params.values() if "SECRET" in v or "AKIA" in v or "/home" in v]
    assert tracking.param_value(SECRET).startswith("s3://bucket/") and "SECRET" not in tracking.param_value(SECRET)
    m = tracking.metrics_of({"val_auroc": 0.7, "training_iteration": 3, "pid": 9, "done": False, "final": 1,
                             "config": {"loss.tau": 0.1}, "trial_id": "x", "seconds": 2})
    assert m == {"val_auroc": 0.7, "seconds": 2.0}


def tracking_cfg():
    from xmodal.methods import sized_config

    return sized_config("smoke", "cromotex")


def _trial(i: int, config: dict, last: dict | None = None):
    return SimpleNamespace(trial_id=f"5ea7c4_{i:05d}", experiment_tag=f"{i}_x", config=config, last_result=last or {})


def _log_a_search(tracker: tracking.Tracker, opts: SearchOptions, tmp_path: Path) -> None:
    """What a search logs for one pathology, with Tune's hooks called by hand."""
    (tmp_path / "recommended.yaml").write_text("loss:\n  tau: 0.05\n")
    (tmp_path / "summary.md").write_text("# summary\n")
    with tracker.pathology("edema", apply_overrides(tracking_cfg(), {"data.pathology": "edema"}), opts) as run:
        cb, = run.callbacks("search")
        done, stopped, failed = (_trial(0, {"loss.strategy": "topk", "loss.tau": 0.01}),
                                 _trial(1, {"loss.strategy": "none", "loss.tau": 0.05}), _trial(2, {"loss.tau": 0.2}))
        for t in (done, stopped, failed):
            cb.log_trial_start(t)
        for step in (1, 2, 3):
            cb.log_trial_result(step, done, {"val_auroc": 0.5 + step / 10, "val_loss": 1.0 / step,
                                             "training_iteration": step, "pid": 1})
        cb.log_trial_result(1, stopped, {"val_auroc": 0.55, "training_iteration": 1})
        done.last_result = {"val_auroc": 0.8, "final": 1, "training_iteration": 4, "stage_key.align": "a1b2",
                            "stage_key.finetune": "f3e4"}
        stopped.last_result = {"val_auroc": 0.55, "training_iteration": 1}
        cb.log_trial_end(done)
        cb.log_trial_end(stopped)
        cb.log_trial_end(failed, failed=True)
        assert pickle.loads(pickle.dumps(cb)).parent == run.run_id  # Tune pickles its callbacks with its state

        runs = [{"loss.tau": 0.05, "align.seed": 1}, {"finetune.init": "ssl", "align.seed": 1}]
        race, = run.callbacks("race-1", [(runs[0], "found-1"), (runs[1], "ECG-only")])
        for i, over in enumerate(runs):
            t = _trial(i, {"refit": over}, {"final": 1})
            race.log_trial_start(t)
            race.log_trial_end(t)
        run.final({"recommended": {"metrics": {"auroc": 0.71, "auroc_lo": 0.6, "auroc_hi": 0.8}},
                   "published": {"metrics": {"auroc": 0.69}}, "baseline": {"metrics": {"auroc": 0.6}}},
                  {"loss.tau": 0.05}, {"recommended": [1, 2], "published": [1, 2], "baseline": [1, 2]})
        run.selection({"selection": {"chosen": "found-1", "rule": "guard", "sentence": "The best found is recommended",
                                     "delta_vs_published": {"estimate": 0.02, "lo": 0.01, "hi": 0.03},
                                     "delta_vs_ecg_only": {"estimate": 0.1, "lo": None, "hi": 0.2}},
                       "val": {"recommended": {"mean_val_auroc": 0.8, "sd_val_auroc": 0.01, "mean_val_auprc": 0.4,
                                               "n_ok": 2}},
                       "trials": 3, "completed": 1, "stopped": 1, "errors": 1, "minutes": 0.5,
                       "image_only_val_auroc": float("nan")},
                      {"loss.tau": 0.05}, [tmp_path / "recommended.yaml", tmp_path / "summary.md"])


def test_a_pathology_is_a_parent_run_with_a_child_per_trial_race_run_and_the_final_evaluation(store, tmp_path):
    opts = SearchOptions(run="nesting", tracking=f"mlflow={store}", num_samples=3)
    tracker = tracking.Tracker(opts.tracking, opts.run, "unused")
    _log_a_search(tracker, opts, tmp_path)

    client = mlflow.MlflowClient(store)
    exp = client.get_experiment_by_name("nesting")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert [p.info.run_name for p in parents] == ["edema"]
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["phase"] == "pathology"
    assert parent.data.params["selection.chosen"] == "found-1" and parent.data.params["recommended.loss.tau"] == "0.05"
    assert parent.data.params["base.data.pathology"] == "edema" and parent.data.params["search.num_samples"] == "3"
    assert parent.data.metrics["recommended.val_auroc"] == 0.8 and parent.data.metrics["delta_vs_published.lo"] == 0.01
    assert parent.data.tags["mlflow.note.content"] == "The best found is recommended"
    assert sorted(a.path for a in client.list_artifacts(parent.info.run_id)) == ["recommended.yaml", "summary.md"]

    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert sorted(children) == ["final", "race-1-0", "race-1-1", "search-0", "search-1", "search-2"]
    done = children["search-0"]
    assert done.data.params == {"loss.strategy": "topk", "loss.tau": "0.01"}
    assert [(m.step, m.value) for m in client.get_metric_history(done.info.run_id, "val_auroc")] == \
        [(1, 0.6), (2, 0.7), (3, 0.8)]
    assert "pid" not in done.data.metrics and "training_iteration" not in done.data.metrics
    assert done.data.tags["stage_key.align"] == "a1b2" and done.data.tags["outcome"] == "completed"
    assert (children["search-1"].info.status, children["search-1"].data.tags["outcome"]) == ("KILLED", "pruned")
    assert (children["search-2"].info.status, children["search-2"].data.tags["outcome"]) == ("FAILED", "failed")
    race = children["race-1-0"]
    assert race.data.params == {"loss.tau": "0.05", "align.seed": "1"} and race.data.tags["candidate"] == "found-1"
    assert race.data.tags["phase"] == "race-1" and children["race-1-1"].data.tags["candidate"] == "ECG-only"
    final = children["final"]
    assert final.data.metrics["recommended.test_auroc"] == 0.71 and final.data.metrics["ecg_only.test_auroc"] == 0.6
    assert final.data.params["seeds.recommended"] == "1,2" and final.data.params["loss.tau"] == "0.05"
    logged = [str(v) for r in runs for v in [*r.data.params.values(), *r.data.tags.values()]]
    assert not [v for v in logged if str(tmp_path) in v]  # no paths (the artifacts' location is MLflow's own)


TEST = {"recommended": {"metrics": {"auroc": 0.7}}}


def test_resume_continues_the_parent_run_and_each_trials_run(store):
    opts = SearchOptions(run="resume", tracking=f"mlflow={store}")
    tracker = tracking.Tracker(opts.tracking, opts.run, "unused")
    cfg = tracking_cfg()
    with tracker.pathology("edema", cfg, opts) as run:
        cb, = run.callbacks("search")
        cb.log_trial_start(_trial(0, {"loss.tau": 0.1}))
        run.final(TEST, {"loss.tau": 0.1}, {"recommended": [1]})
        first = run.run_id
    resumed = SearchOptions(run="resume", tracking=opts.tracking, resume=True)
    with tracking.Tracker(opts.tracking, opts.run, "unused").pathology("edema", cfg, resumed) as run:
        assert run.run_id == first
        cb, = run.callbacks("search")
        t = _trial(0, {"loss.tau": 0.1}, {"final": 1})
        cb.log_trial_start(t)
        cb.log_trial_end(t)
        run.final(TEST, {"loss.tau": 0.1}, {"recommended": [1]})  # the recorded evaluation, again
    runs = mlflow.MlflowClient(store).search_runs([tracker.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["edema", "final", "search-0"]
    assert all(r.info.status == "FINISHED" for r in runs)


def test_a_failed_pathology_ends_its_run_failed(store):
    opts = SearchOptions(run="failed", tracking=f"mlflow={store}")
    tracker = tracking.Tracker(opts.tracking, opts.run, "unused")
    with pytest.raises(RuntimeError):
        with tracker.pathology("edema", tracking_cfg(), opts):
            raise RuntimeError("every trial failed")
    run, = mlflow.MlflowClient(store).search_runs([tracker.experiment_id])
    assert run.info.status == "FAILED"


def test_a_file_store_is_refused_in_one_line_naming_mlflows_opt_in(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)  # MLflow 3 refuses ./mlruns stores without it
    with pytest.raises(ConfigError, match="MLFLOW_ALLOW_FILE_STORE") as e:
        tracking.Tracker(f"mlflow={(tmp_path / 'mlruns').as_uri()}", "unit", "unused")
    assert str(e.value).startswith("--tracking mlflow=file://") and "\n" not in str(e.value)


def test_an_unreachable_server_stops_at_once_and_a_lost_one_never_stops_the_search(tmp_path, capsys, monkeypatch):
    url = f"http://user:VERYSECRET@127.0.0.1:{_closed_port()}"
    with pytest.raises(ConfigError) as e:
        tracking.Tracker(f"mlflow={url}", "unit", "unused")
    assert str(e.value).startswith("--tracking mlflow=http://127.0.0.1:") and "\n" not in str(e.value)
    assert "VERYSECRET" not in str(e.value)
    # A server lost during the search: each hook says in one line what it did not log, and goes on.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    cb = tracking.TrialRuns(url, "1", "parent", {"phase": "search"}, {})
    t = _trial(0, {"loss.tau": 0.1}, {"final": 1})
    cb.log_trial_start(t)
    cb.log_trial_result(1, t, {"val_auroc": 0.5, "training_iteration": 1})
    cb.log_trial_end(t)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("[xmodal] MLflow: ") for line in err)
    assert not [line for line in err if "VERYSECRET" in line]


def test_the_console_and_the_readme_name_the_viewers_with_the_demos_paths(tmp_path, monkeypatch):
    """What a search prints (paths relative to the working directory) is what the README shows for the demo
    (the default storage, run from the repo root); the README's demo line parses."""
    from xmodal.stages.chain import DEFAULT_STORAGE

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    monkeypatch.chdir(tmp_path)
    opts = SearchOptions(run="smoke", storage=str(tmp_path / DEFAULT_STORAGE / "tune"), tracking="mlflow")
    tracker = SimpleNamespace(uri=tracking.location("", opts.storage)[0], run="smoke")  # the default store
    lines = tracking.watch_lines(opts, tracker)
    assert lines == ["Optuna study: optuna-dashboard sqlite:///.cache/xmodal/tune/optuna.db",
                     "TensorBoard: tensorboard --logdir .cache/xmodal/tune",
                     "MLflow experiment 'smoke': mlflow ui --backend-store-uri sqlite:///.cache/xmodal/tune/mlflow.db"]
    for line in lines:
        command = line.split(": ", 1)[1].split()
        if command[0] == "mlflow":
            command[2:2] = ["--workers", "1"]  # the README's ui runs one worker (lighter on a laptop)
        assert f".venv/bin/{' '.join(command)}" in readme, command
    demo = next(x for x in readme.splitlines() if "bash scripts/demo.sh" in x and "--tracking" in x)
    assert cli.parser().parse_args(demo.split("#")[0].split("scripts/demo.sh", 1)[1].split()).tracking == "mlflow"
