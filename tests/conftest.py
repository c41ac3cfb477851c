"""Suite-wide settings: one torch thread per process (2-core CI machines; Ray runs several)."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

SHARED_REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not SHARED_REAL.exists():
        pytest.skip(f"real public samples not found at {SHARED_REAL} (see ../shared/data/real/SOURCE.md)")
    return SHARED_REAL
