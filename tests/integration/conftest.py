"""Shared fixtures for the Ray runs: one local Ray for the session, one tiny synthetic cohort."""

from __future__ import annotations

import pytest

from xmodal.config import apply_overrides, load_yaml


@pytest.fixture(scope="session")
def ray_local():
    import ray

    from xmodal.runtime import ensure_ray

    # Logical CPUs may exceed the 2 physical cores: trials, Train workers and Ray Data each hold some.
    ensure_ray(num_cpus=6)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory):
    from xmodal.data.synthetic import ensure_demo_cohort

    root = tmp_path_factory.mktemp("cohort")
    return ensure_demo_cohort(root / "cxr", subjects=120, seed=3, kind="cxr", cxr_shape=(96, 80))


@pytest.fixture
def smoke_cfg(tiny_cohort, tmp_path):
    from importlib import resources

    cfg = load_yaml(resources.files("xmodal") / "presets" / "smoke.yaml")
    return apply_overrides(cfg, {"data.manifest": str(tiny_cohort), "data.storage": str(tmp_path / "cache")})
