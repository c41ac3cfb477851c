"""CLIP InfoNCE (Radford et al. 2021) and the ECCL objective (Turgut et al. 2025).

ECCL: Turgut et al. 2025, "Unlocking the diagnostic potential of ECG through knowledge transfer from
cardiac MRI": ``total = clip_infonce(z_ecg, z_img) + lambda_task * task_loss``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from xmodal.dist import gather_no_grad, gather_with_grad
from xmodal.errors import ConfigError
from xmodal.losses.common import at_least_fp32, check_tau, fp32_compute, l2_normalize


def clip_logits_loss(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    """Symmetric InfoNCE on already-normalised, already-gathered embeddings.

    Args:
        a: ``(N, D)`` unit vectors. b: ``(N, D)`` unit vectors; ``(a_i, b_i)`` are the positive pairs.
        tau: temperature.

    Returns:
        Scalar ``0.5 * (CE(a->b) + CE(b->a))``, targets on the diagonal.
    """
    logits = a @ b.T / tau  # (N, N)
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def clip_infonce(z_a: torch.Tensor, z_b: torch.Tensor, *, tau: float) -> torch.Tensor:
    """CLIP's symmetric cross-entropy over the ``B x B`` cosine logits (Radford et al. 2021).

    With a process group, embeddings are gathered from every rank and the loss is computed over the
    global ``(world * B) x (world * B)`` matrix (see :mod:`xmodal.dist`).

    Args:
        z_a: ``(B, D)`` embeddings of modality a (any scale; L2-normalised here).
        z_b: ``(B, D)`` embeddings of modality b; row i pairs with ``z_a[i]``.
        tau: temperature.

    Returns:
        Scalar loss, ``0.5`` per direction.
    """
    check_tau(tau)
    with fp32_compute(z_a):
        a = l2_normalize(gather_with_grad(at_least_fp32(z_a)))
        b = l2_normalize(gather_with_grad(at_least_fp32(z_b)))
        return clip_logits_loss(a, b, tau)


def masked_bce_with_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over the rows whose target is not NaN (0 with grad if none are).

    Args:
        logits: ``(B,)`` task logits. targets: ``(B,)`` float 0/1, NaN = unlabelled.

    Returns:
        Scalar loss. With a process group the mean is over the labelled rows of the global batch.
    """
    with fp32_compute(logits):
        logits = gather_with_grad(at_least_fp32(logits))
        targets = gather_no_grad(at_least_fp32(targets))
        valid = ~torch.isnan(targets)
        per_row = F.binary_cross_entropy_with_logits(logits, torch.nan_to_num(targets), reduction="none")
        return torch.where(valid, per_row, 0.0).sum() / valid.sum().clamp(min=1)


class CLIPTaskLoss(nn.Module):
    """ECCL objective: CLIP InfoNCE plus an optional weighted task term (Turgut et al. 2025).

    Reads ``z_ecg (B, D)``, ``z_img (B, D)``; when ``lambda_task > 0`` also ``task_logits (B,)`` and
    ``task_targets (B,)`` (float, NaN ignored). Returns ``{"contrastive_loss", "task_loss"}`` where
    ``task_loss`` is already multiplied by ``lambda_task`` (omitted when ``lambda_task == 0``).
    """

    def __init__(self, *, tau: float = 0.07, lambda_task: float = 0.0):
        super().__init__()
        check_tau(tau)
        if lambda_task < 0:
            raise ConfigError(f"loss.lambda_task={lambda_task} must be >= 0")
        self.tau, self.lambda_task = tau, lambda_task

    @classmethod
    def from_config(cls, cfg) -> "CLIPTaskLoss":
        return cls(tau=cfg.tau, lambda_task=cfg.lambda_task)

    def forward(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        terms = {"contrastive_loss": clip_infonce(out["z_ecg"], out["z_img"], tau=self.tau)}
        if self.lambda_task > 0:
            terms["task_loss"] = self.lambda_task * masked_bce_with_logits(out["task_logits"], out["task_targets"])
        return terms

    def extra_repr(self) -> str:
        return f"tau={self.tau}, lambda_task={self.lambda_task}"
