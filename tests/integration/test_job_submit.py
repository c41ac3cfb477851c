"""The product's cluster path: ``ray start --head`` + ``ray job submit --working-dir . -- python
searches/ahnp_per_pathology.py --smoke-test``, exactly as a user runs it (local head, token auth), with
the cache on an object store as on a cluster."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.own_cluster]
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def head():
    """A Ray head started from the project's environment (so the job's ``python`` is ours)."""
    import ray

    ray.shutdown()  # the session's local Ray, if a test started it: two clusters would share the cores
    temp = tempfile.mkdtemp(prefix="xr", dir="/tmp")  # short: Ray's socket paths have a length limit
    port, dash = _free_port(), _free_port()
    # Every port of its own: another Ray on this machine (a developer's) may hold the defaults.
    ports = [f"--{name}={_free_port()}" for name in (
        "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port",
        "ray-client-server-port", "node-manager-port", "object-manager-port")]
    # No 30 s graceful drain on SIGTERM at teardown (it waits on the job's leftover detached actors).
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}",
         f"--temp-dir={temp}", "--num-cpus=6", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dash}", "--disable-usage-stats", *ports],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ray start failed:\n{proc.stdout.read()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", dash)) == 0:
                break
        time.sleep(1)
    else:
        pytest.fail("the Ray dashboard (job server) did not come up in 120 s")
    yield address, env
    # SIGTERM to `ray start` alone: it stops its processes in order. Signalling the whole group kills
    # the GCS first, and `ray start` then waits 30 s for it to answer.
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # anything left behind
    except ProcessLookupError:
        pass
    shutil.rmtree(temp, ignore_errors=True)


def _submit(address: str, env: dict, args: list[str]) -> str:
    cmd = [str(Path(sys.executable).parent / "ray"), "job", "submit", "--address", address, "--working-dir", ".",
           "--", "python", "searches/ahnp_per_pathology.py", *args]
    for _ in range(60):  # the job agent registers a little after the dashboard answers
        proc = subprocess.run(cmd, cwd=ROOT, env={**env, "RAY_AUTH_MODE": "token"}, capture_output=True,
                              text=True, timeout=900)
        out = proc.stdout + proc.stderr
        if "No available agent" not in out:
            break
        time.sleep(2)
    assert proc.returncode == 0 and "succeeded" in out, out[-4000:]
    return out


def test_ray_job_submit_smoke_search_on_object_storage_writes_recommended_configs_and_resumes(
        head, tmp_path, tiny_cohort, stage_cache, s3_uri):
    """As on a cluster: the stage cache, Ray Train checkpoints and Tune experiments live on an object
    store (``--storage s3://...``; a local S3 server here), which the job's driver and the head's
    workers reach alike; ``--resume`` finds the finished search there."""
    import pyarrow.fs as pafs

    from xmodal.data.pipeline import read_access_log
    from xmodal.storage import Storage

    address, env = head
    st = Storage(s3_uri)
    # The session's shards, image features and shared stages (filled by the chain tests when they ran
    # first) are uploaded: the job then starts at the search, as on a cluster whose cache holds them.
    for folder in ("shards", "features", "stages"):
        if (stage_cache / folder).is_dir():
            pafs.copy_files(str(stage_cache / folder), st.path(folder), source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=st.fs)
    reports = tmp_path / "reports"
    args = ["--smoke-test", "--data", str(tiny_cohort), "--config", "xmodal/presets/smoke.yaml",
            "--reports", str(reports), "--storage", s3_uri]
    out = _submit(address, env, args)
    assert re.search(r"\[cardiomegaly trial 1/2\] (done|stopped) ", out), out[-4000:]  # progress reached the job log

    run = reports / "smoke"
    rec = run / "cardiomegaly" / "recommended.yaml"
    assert rec.is_file() and (run / "summary.md").is_file() and (run / "summary.html").is_file()
    from xmodal.config import load_yaml

    cfg = load_yaml(rec)
    rec_text = rec.read_text()
    assert cfg.data.pathology == "cardiomegaly" and cfg.loss.name == "ahnp_supcon"
    trials = pd.read_parquet(run / "cardiomegaly" / "trials.parquet")
    assert len(trials) == 2 and (trials["status"] != "error").all()
    # The race and the guard: a selection block, and the same facts in summary.json.
    selection = yaml.safe_load(rec_text)["selection"]
    assert selection["chosen"] in ("found", "published") and selection["rounds"] >= 1
    facts = json.loads((run / "summary.json").read_text())["pathologies"]["cardiomegaly"]
    for key in ("image_only_val_auroc", "ecg_only_val_auroc", "recommended_val_auroc"):
        assert 0 <= facts[key] <= 1, key
    assert facts["chosen"] == selection["chosen"]
    assert set(facts["delta_vs_published"]) == set(facts["delta_vs_ecg_only"]) == {"estimate", "lo", "hi"}
    race = pd.read_parquet(run / "cardiomegaly" / "race.parquet")
    assert set(race["candidate"]) >= {"published", "ECG-only"} and (race["status"] == "completed").all()

    # Everything the search keeps is on the object store.
    for stage in ("image_pretrain", "ecg_ssl", "align", "finetune"):
        keys = st.listdir("stages", stage)
        assert keys and all(st.exists("stages", stage, k, "meta.json") for k in keys), stage
    assert st.listdir("shards") and st.listdir("features")
    assert st.listdir("in_process")  # the one-worker runs' checkpoints (trained in process, not as Train runs)
    assert {"smoke-cardiomegaly", "smoke-cardiomegaly-race-1", "smoke-cardiomegaly-race-2"} <= set(st.listdir("tune"))
    def test_reads() -> list[str]:  # the access log keeps one object per split read
        return [r["purpose"] for key in st.listdir("access") for r in read_access_log(st, key) if r["split"] == "test"]

    assert test_reads() == ["final_evaluation"], test_reads()

    # No subject or pair identifier anywhere in the report.
    manifest = pd.read_parquet(tiny_cohort)
    ids = set(manifest["subject_id"].astype(str)) | set(manifest["pair_id"].astype(str))
    blob = b"".join(p.read_bytes() for p in run.rglob("*") if p.is_file() and p.suffix != ".png")
    assert not [i for i in ids if i.encode() in blob]
    assert b"test-secret" not in blob  # the storage URI's credentials stay out of reports

    # --resume restores both Tune experiments from the object store: finished trials kept, none retrained.
    aligned = st.listdir("stages", "align")
    _submit(address, env, [*args, "--resume"])
    resumed = pd.read_parquet(run / "cardiomegaly" / "trials.parquet")
    by = [c for c in trials.columns if c.startswith("param:")]
    pd.testing.assert_frame_equal(resumed.drop(columns=["trial", "seconds"]).sort_values(by, ignore_index=True),
                                  trials.drop(columns=["trial", "seconds"]).sort_values(by, ignore_index=True))
    assert st.listdir("stages", "align") == aligned
    # The resumed search's final evaluation is the recorded one: the test split was read once in all.
    assert test_reads() == ["final_evaluation"], test_reads()
    assert (run / "cardiomegaly" / "recommended.yaml").read_text() == rec_text
