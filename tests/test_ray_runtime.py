"""How ``xmodal.runtime`` configures a local Ray before starting it (no Ray started here)."""

from __future__ import annotations

import logging
import os


def test_local_worker_pool_follows_oversubscribed_logical_cpus(monkeypatch):
    from xmodal.runtime import local_worker_pool

    names = ("RAY_worker_maximum_startup_concurrency", "RAY_num_workers_soft_limit",
             "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER")
    for name in names:  # recorded, so that what the function sets is undone after the test
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    local_worker_pool(2)  # as many logical CPUs as cores: Ray's own pool settings stand
    assert "RAY_worker_maximum_startup_concurrency" not in os.environ
    assert "RAY_num_workers_soft_limit" not in os.environ
    assert os.environ["RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"] == "0"  # a single node is never drained
    local_worker_pool(6)
    assert os.environ["RAY_worker_maximum_startup_concurrency"] == "12"  # Ray warns at 4x this many workers
    assert os.environ["RAY_num_workers_soft_limit"] == "12"
    monkeypatch.setenv("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "1")
    local_worker_pool(8)  # values set before (by the user, or the first start) are kept
    assert os.environ["RAY_worker_maximum_startup_concurrency"] == "12"
    assert os.environ["RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"] == "1"


def test_quiet_keeps_the_console_to_xmodal_lines():
    from xmodal.runtime import quiet

    quiet()
    token_notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
    assert not token_notice.isEnabledFor(logging.WARNING)  # announced at every start; token auth stays on
    assert logging.getLogger("ray.train").getEffectiveLevel() >= logging.WARNING


def test_oversubscribed_means_one_local_node_with_more_logical_cpus_than_cores(monkeypatch):
    import ray
    import ray.util

    from xmodal.runtime import oversubscribed

    node = lambda ip, cpus: {"Alive": True, "NodeManagerAddress": ip, "Resources": {"CPU": cpus}}  # noqa: E731
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(ray.util, "get_node_ip_address", lambda: "10.0.0.1")
    for nodes, expected in (
        ([node("10.0.0.1", 6.0)], True),  # xmodal's local default: 6 logical CPUs on 2 cores
        ([node("10.0.0.1", 2.0)], False),
        ([node("10.0.0.2", 6.0)], False),  # a remote head: its cores are not known here
        ([node("10.0.0.1", 6.0), node("10.0.0.2", 16.0)], False),  # a cluster
        ([node("10.0.0.1", 6.0), {**node("10.0.0.2", 16.0), "Alive": False}], True),
    ):
        monkeypatch.setattr(ray, "nodes", lambda nodes=nodes: nodes)
        assert oversubscribed() is expected, nodes
