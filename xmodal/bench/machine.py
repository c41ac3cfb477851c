"""What the numbers were measured on: cores, memory, GPU, library versions."""

from __future__ import annotations

import os
import platform


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        return float("nan")


def describe() -> dict:
    """``{"cores", "cpu", "memory_gb", "gpu", "gpus", "torch", "ray", "python", "platform"}``."""
    import ray
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return {"cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "cpu": _cpu_model(), "memory_gb": _memory_gb(),
            "gpu": torch.cuda.get_device_name(0) if gpus else "none", "gpus": gpus,
            "torch": torch.__version__, "ray": ray.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "")}


def one_line(m: dict) -> str:
    return (f"{m['cores']} CPU cores ({m['cpu']}), {m['memory_gb']} GiB RAM, GPU: {m['gpu']}; "
            f"torch {m['torch']}, Ray {m['ray']}, Python {m['python']}")
