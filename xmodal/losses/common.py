"""Small helpers every loss shares: float32 compute under autocast, L2 normalisation, arg checks."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from xmodal.errors import ConfigError


def at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32, or float64 when it already is (so gradcheck keeps double precision)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def fp32_compute(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """Disable autocast on ``x``'s device: similarities and logsumexps stay in float32 under bf16."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """Unit vectors along the last dimension, computed in (at least) float32."""
    return F.normalize(at_least_fp32(x), dim=-1)


def check_tau(tau: float) -> None:
    if not tau > 0:
        raise ConfigError(f"loss temperature tau={tau} must be > 0 (e.g. loss.tau=0.07)")
