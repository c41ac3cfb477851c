"""Shared fixtures for the Ray runs: one local Ray for the session, one tiny synthetic cohort."""

from __future__ import annotations

import pytest

from xmodal.config import apply_overrides


@pytest.fixture(scope="session")
def _session_ray():
    import ray

    yield
    ray.shutdown()


@pytest.fixture
def ray_local(_session_ray):
    """The session's local Ray: started by the first test that asks, again only after a test shut it
    down (the job-submit test, which runs its own cluster)."""
    from xmodal.runtime import ensure_ray

    # Logical CPUs may exceed the 2 physical cores: trials, Train workers and Ray Data each hold some.
    ensure_ray(num_cpus=6)


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory):
    from xmodal.data.synthetic import ensure_demo_cohort

    root = tmp_path_factory.mktemp("cohort")
    return ensure_demo_cohort(root / "cxr", subjects=120, seed=3, kind="cxr", cxr_shape=(96, 80))


@pytest.fixture(scope="session")
def stage_cache(tmp_path_factory):
    """One local stage cache for the session: the chain test fills it first (it asserts that), and later
    tests reuse its shared stages, as trials on a warm cache do."""
    return tmp_path_factory.mktemp("stages") / "cache"


@pytest.fixture
def smoke_cfg(tiny_cohort, stage_cache):
    from xmodal.methods import sized_config

    cfg = sized_config("smoke", "cromotex")
    return apply_overrides(cfg, {"data.manifest": str(tiny_cohort), "data.storage": str(stage_cache)})
