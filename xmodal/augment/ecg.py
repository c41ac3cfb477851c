"""Temporal and lead augmentations of batched 12-lead ECGs ``(B, 12, L)``.

Each transform is a small callable ``t(x, generator=None) -> x'`` with the same shape, dtype and
device; randomness is drawn per sample from ``generator`` (or the global RNG).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from xmodal.augment._rng import normal, uniform

PRECORDIAL = (6, 7, 8, 9, 10, 11)  # V1..V6 in the 12-lead order

Transform = Callable[..., torch.Tensor]


class TimeWarp:
    """Smooth random stretch of the time axis, same for all leads of a sample.

    Local playback speed is ``exp(u)``, ``u ~ U(-log(1 + max_stretch), log(1 + max_stretch))`` at
    ``n_knots`` evenly spaced knots, linearly interpolated to L samples. Its cumulative sum, rescaled
    to ``[0, L - 1]``, gives a monotone source position for each output sample (first and last samples
    stay fixed); the signal is read there by linear interpolation.
    """

    def __init__(self, max_stretch: float = 0.2, n_knots: int = 4):
        assert max_stretch >= 0 and n_knots >= 2
        self.log_range = math.log1p(max_stretch)
        self.n_knots = n_knots

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, c, length = x.shape
        log_speed = uniform((b, 1, self.n_knots), -self.log_range, self.log_range, generator, x.device)
        speed = F.interpolate(log_speed.double().exp(), size=length, mode="linear", align_corners=True)[:, 0]
        pos = torch.cumsum(speed, dim=1) - speed[:, :1]
        pos = pos / pos[:, -1:] * (length - 1)  # (B, L) monotone in [0, L-1]; float64 keeps 0 stretch exact
        lo = pos.floor().long().clamp(max=length - 2)
        frac = (pos - lo).to(x.dtype)[:, None, :]  # (B, 1, L)
        lo = lo[:, None, :].expand(b, c, length)
        return torch.gather(x, 2, lo) * (1 - frac) + torch.gather(x, 2, lo + 1) * frac


class Jitter:
    """Additive Gaussian noise ``N(0, sigma^2)`` (inputs are z-scored per lead, so sigma is relative)."""

    def __init__(self, sigma: float = 0.03):
        self.sigma = sigma

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return x + self.sigma * normal(tuple(x.shape), generator, x.device).to(x.dtype)


class LeadPermutation:
    """With probability ``p`` per sample, shuffle the leads in ``leads`` into a random order.

    ``leads="precordial"`` permutes V1-V6 among their slots (limb leads keep their places);
    ``leads="all"`` permutes all 12. It makes a fine-tuned encoder rely less on which slot a lead
    sits in (lead misplacement / montage differences). This is our reading of CroMoTEX's fine-tune
    lead permutation, not a copy of its code.
    """

    def __init__(self, p: float = 0.5, leads: str = "precordial"):
        choices = {"precordial": PRECORDIAL, "all": tuple(range(12))}
        if leads not in choices:
            raise ValueError(f"leads={leads!r} must be one of {', '.join(choices)}")
        self.p = p
        self.subset = choices[leads]

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, c, length = x.shape
        subset = torch.tensor(self.subset, device=x.device)
        keys = uniform((b, len(subset)), 0.0, 1.0, generator, x.device)
        apply = uniform((b, 1), 0.0, 1.0, generator, x.device) < self.p  # (B, 1)
        perm = torch.where(apply, keys.argsort(dim=1), torch.arange(len(subset), device=x.device))
        index = torch.arange(c, device=x.device).repeat(b, 1)  # (B, 12)
        index[:, subset] = subset[perm]
        return torch.gather(x, 1, index[:, :, None].expand(b, c, length))


class Compose:
    """Apply transforms in order, passing the same generator to each."""

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = list(transforms)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for t in self.transforms:
            x = t(x, generator)
        return x
