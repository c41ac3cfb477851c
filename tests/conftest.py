"""Suite-wide settings: one torch thread per process (2-core CI machines; Ray runs several)."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

SHARED_REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


def pytest_collection_modifyitems(config, items):
    """Unit tests first, then the Ray tests, and the job-submit test (a Ray cluster of its own) last.

    An idle local Ray takes about a quarter of a core (log monitor, dashboard and its agent, idle
    worker processes; measured over 30 s on 2 cores): unit tests then run before the session's Ray
    starts, and the job-submit test shuts it down rather than share the cores with it.
    """
    def order(item) -> int:
        if item.get_closest_marker("integration") is None:
            return 0
        return 2 if item.get_closest_marker("own_cluster") else 1

    items.sort(key=order)  # stable: file order within each group


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not SHARED_REAL.exists():
        pytest.skip(f"real public samples not found at {SHARED_REAL} (see ../shared/data/real/SOURCE.md)")
    return SHARED_REAL


@pytest.fixture(scope="session")
def s3_server() -> str:
    """An S3 server on localhost (moto), standing in for the object store of a cluster: ``host:port``."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


@pytest.fixture
def s3_uri(s3_server, request) -> str:
    """A fresh ``s3://`` prefix on :func:`s3_server`, as ``--storage`` takes it. The credentials travel in
    the URI: Ray's workers were started before the server and see none of the test's environment."""
    return (f"s3://test-key:test-secret@xmodal-cache/{request.node.name[:60]}?endpoint_override={s3_server}"
            "&scheme=http&allow_bucket_creation=true&region=us-east-1")
