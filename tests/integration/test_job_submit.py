"""The product's cluster path: ``ray start --head`` + ``ray job submit --working-dir . -- python
searches/ahnp_per_pathology.py --smoke-test``, exactly as a user runs it (local head, token auth)."""

from __future__ import annotations

import os
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

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def head():
    """A Ray head started from the project's environment (so the job's ``python`` is ours)."""
    temp = tempfile.mkdtemp(prefix="xr", dir="/tmp")  # short: Ray's socket paths have a length limit
    port, dash = _free_port(), _free_port()
    # Every port of its own: another Ray on this machine (the session's ray.init) holds the defaults.
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


def test_ray_job_submit_smoke_search_writes_recommended_configs(head, tmp_path, tiny_cohort, stage_cache):
    address, env = head
    reports = tmp_path / "reports"
    # The session's tiny cohort and stage cache (warm when the chain test ran first): the job then
    # starts at the search, as on a cluster whose cache already holds the shared stages.
    cmd = [str(Path(sys.executable).parent / "ray"), "job", "submit", "--address", address, "--working-dir", ".",
           "--", "python", "searches/ahnp_per_pathology.py", "--smoke-test", "--data", str(tiny_cohort),
           "--config", "xmodal/presets/smoke.yaml", "--reports", str(reports), "--storage", str(stage_cache)]
    for _ in range(60):  # the job agent registers a little after the dashboard answers
        proc = subprocess.run(cmd, cwd=ROOT, env={**env, "RAY_AUTH_MODE": "token"}, capture_output=True,
                              text=True, timeout=900)
        out = proc.stdout + proc.stderr
        if "No available agent" not in out:
            break
        time.sleep(2)
    assert proc.returncode == 0 and "succeeded" in out, out[-4000:]
    assert "[cardiomegaly trial 1/2] done" in out  # the per-trial progress line reached the job log

    run = reports / "smoke"
    rec = run / "cardiomegaly" / "recommended.yaml"
    assert rec.is_file() and (run / "summary.md").is_file() and (run / "summary.html").is_file()
    from xmodal.config import load_yaml

    cfg = load_yaml(rec)
    assert cfg.data.pathology == "cardiomegaly" and cfg.loss.name == "ahnp_supcon"
    trials = pd.read_parquet(run / "cardiomegaly" / "trials.parquet")
    assert len(trials) == 2 and (trials["status"] != "error").all()

    # No subject or pair identifier anywhere in the report.
    manifest = pd.read_parquet(tiny_cohort)
    ids = set(manifest["subject_id"].astype(str)) | set(manifest["pair_id"].astype(str))
    blob = b"".join(p.read_bytes() for p in run.rglob("*") if p.is_file() and p.suffix != ".png")
    assert not [i for i in ids if i.encode() in blob]
