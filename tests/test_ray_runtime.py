"""How ``xmodal.runtime`` configures a local Ray before starting it (no Ray started here)."""

from __future__ import annotations

import logging
import os


def test_startup_concurrency_follows_oversubscribed_logical_cpus(monkeypatch):
    from xmodal.runtime import startup_concurrency

    monkeypatch.delenv("RAY_worker_maximum_startup_concurrency", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    startup_concurrency(2)  # as many logical CPUs as cores: Ray's own cap stands
    assert "RAY_worker_maximum_startup_concurrency" not in os.environ
    startup_concurrency(6)
    assert os.environ["RAY_worker_maximum_startup_concurrency"] == "6"
    startup_concurrency(8)  # a value set before (by the user, or the first start) is kept
    assert os.environ["RAY_worker_maximum_startup_concurrency"] == "6"


def test_quiet_keeps_the_console_to_xmodal_lines():
    from xmodal.runtime import quiet

    quiet()
    token_notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
    assert not token_notice.isEnabledFor(logging.WARNING)  # announced at every start; token auth stays on
    assert logging.getLogger("ray.train").getEffectiveLevel() >= logging.WARNING
