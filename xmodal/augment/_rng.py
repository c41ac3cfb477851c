"""Random draws on a generator's device, moved to the data's device (a CPU Generator works for GPU data)."""

from __future__ import annotations

import torch


def _device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    return generator.device if generator is not None else device


def uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator | None,
            device: torch.device) -> torch.Tensor:
    """``U(low, high)`` float32 of ``shape`` on ``device``."""
    u = torch.rand(shape, generator=generator, device=_device(generator, device))
    return (low + (high - low) * u).to(device)


def normal(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Standard normal float32 of ``shape`` on ``device``."""
    return torch.randn(shape, generator=generator, device=_device(generator, device)).to(device)
