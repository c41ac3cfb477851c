"""Two independently augmented views of a batch, for SimCLR-style contrastive pretraining."""

from __future__ import annotations

from typing import Callable

import torch


class TwoViews:
    """``TwoViews(t)(x (B, 12, L), generator=None) -> (t(x), t(x))``, two independent draws."""

    def __init__(self, transform: Callable[..., torch.Tensor]):
        self.transform = transform

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(x, generator), self.transform(x, generator)
