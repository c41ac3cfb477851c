"""Repeated measurements summarised as median and min–max (what every figure in the report shows)."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def summary(values: list[float]) -> dict:
    """``{"median", "min", "max", "n", "values"}`` of repeated measurements."""
    assert values, "no measurements"
    return {"median": float(statistics.median(values)), "min": float(min(values)), "max": float(max(values)),
            "n": len(values), "values": [float(v) for v in values]}


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Wall seconds of one call, and its result."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def ratio(a: dict, b: dict) -> float:
    """Ratio of two summaries' medians."""
    return a["median"] / b["median"]
