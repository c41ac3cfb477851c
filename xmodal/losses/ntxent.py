"""SimCLR's NT-Xent loss (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
Representations") for the ECG self-supervised stage."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from xmodal.dist import gather_with_grad
from xmodal.losses.common import at_least_fp32, check_tau, fp32_compute, l2_normalize


def ntxent(z1: torch.Tensor, z2: torch.Tensor, *, tau: float) -> torch.Tensor:
    """NT-Xent over the ``2N`` views ``[z1; z2]``.

    Each view's positive is the other view of the same sample; its negatives are all other ``2N - 2``
    views (cross-view and same-view); itself is excluded. Every anchor uses the same normalisation
    over the ``2N - 1`` other views, and the loss is the mean over all ``2N`` anchors. With a process
    group, ``N = world * B`` (views gathered from every rank, see :mod:`xmodal.dist`).

    Args:
        z1: ``(B, D)`` embeddings of the first view (any scale; L2-normalised here).
        z2: ``(B, D)`` embeddings of the second view of the same samples.
        tau: temperature.

    Returns:
        Scalar loss.
    """
    check_tau(tau)
    with fp32_compute(z1):
        v1 = l2_normalize(gather_with_grad(at_least_fp32(z1)))
        v2 = l2_normalize(gather_with_grad(at_least_fp32(z2)))
        n = v1.shape[0]
        z = torch.cat([v1, v2])  # (2N, D)
        logits = (z @ z.T / tau).fill_diagonal_(float("-inf"))  # exclude self
        target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
        return F.cross_entropy(logits, target)


class NTXentLoss(nn.Module):
    """SimCLR loss as a module: reads ``z1 (B, D)`` and ``z2 (B, D)``; returns ``{"ntxent_loss"}``."""

    def __init__(self, tau: float = 0.1):
        super().__init__()
        check_tau(tau)
        self.tau = tau

    def forward(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"ntxent_loss": ntxent(out["z1"], out["z2"], tau=self.tau)}

    def extra_repr(self) -> str:
        return f"tau={self.tau}"
