"""Heads that sit on top of encoder embeddings; kept apart from the encoders."""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """Linear-BN-ReLU-Linear projection into the contrastive space (SimCLR, Chen et al. 2020;
    the layout of lightly's ``SimCLRProjectionHead``).

    ``(B, in_dim)`` -> ``(B, out_dim)``. BatchNorm needs B > 1 in training mode.
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden, bias=False),  # the BN shift makes a bias redundant
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(B, in_dim)`` -> ``(B, out_dim)``."""
        return self.net(x)


class ClassificationHead(nn.Module):
    """Dropout + Linear: ``(B, in_dim)`` -> logits ``(B, n_out)`` (``(B, 1)`` for one label)."""

    def __init__(self, in_dim: int, n_out: int = 1, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_dim, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(B, in_dim)`` -> ``(B, n_out)``."""
        return self.linear(self.dropout(x))
