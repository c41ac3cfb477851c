"""Adaptive hard-negative-weighted supervised contrastive loss (CroMoTEX's AHNP-SupCon).

CroMoTEX: Rahman et al. 2025, cross-modal (ECG <-> image) supervised contrastive learning with
hard-negative weighting. The loss is SupCon (Khosla et al. 2020, "Supervised Contrastive Learning")
between two modalities, where negatives in the softmax denominator are up-weighted by a
*hard-negative weighting* step. As in pytorch-metric-learning's miners, that step is its own function,
:func:`hard_negative_log_weights`, computed without gradient, which hands log-weights to the flat loss.

For one direction, anchors ``a`` and candidates ``b`` (see ``docs/losses.md``)::

    c_ij = cos(a_i, b_j),  s_ij = c_ij / tau
    P(i) = {j : y_j == y_i}  (includes j = i),  N(i) = {j : y_j != y_i}
    log p_ij = s_ij - logsumexp_j(s_ij + log w_ij)          (w_ij = 1 on positives)
    l_i = -sum_{j in P(i)} m_ij log p_ij / sum_{j in P(i)} m_ij,   m_ii = beta, else 1

and the returned loss is the mean of the ECG->image and image->ECG directions.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from xmodal.dist import gather_no_grad, gather_with_grad
from xmodal.errors import ConfigError
from xmodal.losses.common import at_least_fp32, check_tau, fp32_compute, l2_normalize

STRATEGIES = ("none", "topk", "linear", "exp")


def check_ahnp_args(strategy: str, k: float, alpha: float, beta: float, tau: float) -> None:
    """Raise :class:`ConfigError` for hyperparameters the loss cannot use."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"loss.strategy={strategy!r} is not one of {', '.join(STRATEGIES)}")
    check_tau(tau)
    if strategy == "topk" and not 0.0 < k <= 1.0:
        raise ConfigError(f"loss.k={k} must be a fraction of the negatives in (0, 1]")
    if strategy in ("topk", "linear") and not alpha > 0:
        raise ConfigError(f"loss.alpha={alpha} must be > 0 for strategy {strategy!r} (it is a weight)")
    if not beta > 0:
        raise ConfigError(f"loss.beta={beta} must be > 0 (weight of the same-sample positive)")


@torch.no_grad()
def hard_negative_log_weights(cos: torch.Tensor, labels_a: torch.Tensor, labels_b: torch.Tensor,
                              strategy: str, k: float, alpha: float, tau: float) -> torch.Tensor:
    """Log-weights ``log w_ij`` of the softmax denominator; 0 on positives (computed without gradient).

    Args:
        cos: ``(B, B')`` cosine similarities of anchors (rows) to candidates (columns).
        labels_a: ``(B,)`` integer class of each anchor.
        labels_b: ``(B',)`` integer class of each candidate.
        strategy: ``none`` (w = 1), ``topk`` (w = alpha on the ``ceil(k |N(i)|)`` most similar
            negatives of row i), ``linear`` (w from 1 at the row's least similar negative to alpha at
            its most similar), ``exp`` (w = 1 + exp(alpha * c / tau), as softplus in log-space).
        k: fraction of each row's negatives that ``topk`` up-weights (at least one).
        alpha: hard-negative weight (``topk``, ``linear``) or sharpness (``exp``).
        tau: temperature (``exp`` only).

    Returns:
        ``(B, B')`` log-weights in the dtype of ``cos`` (float32 or float64).
    """
    cos = cos.detach()
    neg = labels_a[:, None] != labels_b[None, :]  # (B, B')
    zero = torch.zeros((), dtype=cos.dtype, device=cos.device)
    if strategy == "none":
        return torch.zeros_like(cos)
    if strategy == "topk":
        n_neg = neg.sum(dim=1)  # (B,) per-row counts differ
        n_top = torch.ceil(k * n_neg.double()).long().clamp(min=1)  # (B,) rows without negatives: masked below
        # Take the k_max = ceil(k B') most similar candidates per row (positives pushed last with -inf;
        # a static bound, so no device sync), then keep the first n_top[i] of them in row i.
        k_max = min(cos.shape[1], math.ceil(k * cos.shape[1]))
        idx = cos.masked_fill(~neg, -math.inf).topk(k_max, dim=1).indices  # (B, k_max), most similar first
        keep = torch.arange(k_max, device=cos.device) < n_top[:, None]  # (B, k_max)
        top = torch.zeros_like(neg).scatter_(1, idx, keep) & neg
        return torch.where(top, torch.full_like(cos, math.log(alpha)), zero)
    if strategy == "linear":
        has_neg = neg.any(dim=1, keepdim=True)
        c_min = cos.masked_fill(~neg, math.inf).amin(dim=1, keepdim=True).where(has_neg, zero)
        c_max = cos.masked_fill(~neg, -math.inf).amax(dim=1, keepdim=True).where(has_neg, zero)
        frac = (cos - c_min) / (c_max - c_min + 1e-8)
        return torch.where(neg, torch.log1p((alpha - 1.0) * frac), zero)
    if strategy == "exp":
        # log(1 + exp(alpha * s)) = softplus(alpha * s), as logaddexp(0, .): no overflow, no threshold cut.
        return torch.where(neg, torch.logaddexp(zero, alpha * cos / tau), zero)
    raise ConfigError(f"loss.strategy={strategy!r} is not one of {', '.join(STRATEGIES)}")


def weighted_supcon(cos: torch.Tensor, labels_a: torch.Tensor, labels_b: torch.Tensor,
                    log_w: torch.Tensor, *, beta: float, tau: float) -> torch.Tensor:
    """One direction of the weighted SupCon loss, averaged over anchors.

    Args:
        cos: ``(B, B)`` cosine similarities; ``cos[i, i]`` pairs the two modalities of sample i.
        labels_a: ``(B,)`` anchor classes. labels_b: ``(B,)`` candidate classes.
        log_w: ``(B, B)`` detached log-weights from :func:`hard_negative_log_weights`.
        beta: weight ``m_ii`` of the same-sample positive (other positives weigh 1).
        tau: temperature.

    Returns:
        Scalar loss.
    """
    assert cos.shape[0] == cos.shape[1], "anchors and candidates must be the same samples"
    s = cos / tau
    log_p = s - torch.logsumexp(s + log_w, dim=1, keepdim=True)
    m = (labels_a[:, None] == labels_b[None, :]).to(s.dtype)
    m.diagonal().fill_(beta)
    return (-(m * log_p).sum(dim=1) / m.sum(dim=1)).mean()


def ahnp_supcon(z_ecg: torch.Tensor, z_img: torch.Tensor, labels: torch.Tensor, *, strategy: str,
                k: float, alpha: float, beta: float, tau: float) -> torch.Tensor:
    """Symmetric hard-negative-weighted cross-modal SupCon loss (CroMoTEX, Rahman et al. 2025).

    With a process group, embeddings and labels are gathered from every rank and the loss is
    computed over the global batch (see :mod:`xmodal.dist` for the gradient convention).

    Args:
        z_ecg: ``(B, D)`` ECG embeddings (any scale; L2-normalised here).
        z_img: ``(B, D)`` image embeddings of the same samples.
        labels: ``(B,)`` integer class of each sample.
        strategy, k, alpha: see :func:`hard_negative_log_weights`.
        beta: weight of the same-sample (ECG_i, image_i) positive.
        tau: temperature.

    Returns:
        Scalar float32 (float64 for float64 inputs) loss: mean of ECG->image and image->ECG.
    """
    check_ahnp_args(strategy, k, alpha, beta, tau)
    with fp32_compute(z_ecg):
        a = l2_normalize(gather_with_grad(at_least_fp32(z_ecg)))
        b = l2_normalize(gather_with_grad(at_least_fp32(z_img)))
        y = gather_no_grad(labels)
        cos = a @ b.T
        loss_ab = weighted_supcon(cos, y, y, hard_negative_log_weights(cos, y, y, strategy, k, alpha, tau),
                                  beta=beta, tau=tau)
        cos_t = cos.T
        loss_ba = weighted_supcon(cos_t, y, y, hard_negative_log_weights(cos_t, y, y, strategy, k, alpha, tau),
                                  beta=beta, tau=tau)
    return 0.5 * (loss_ab + loss_ba)


class AHNPSupConLoss(nn.Module):
    """CroMoTEX alignment loss as a module: reads ``z_ecg (B, D)``, ``z_img (B, D)``, ``labels (B,)``.

    Returns ``{"contrastive_loss": scalar}``.
    """

    def __init__(self, *, strategy: str = "topk", k: float = 0.075, alpha: float = 4.5, beta: float = 2.0,
                 tau: float = 0.01):
        super().__init__()
        check_ahnp_args(strategy, k, alpha, beta, tau)
        self.strategy, self.k, self.alpha, self.beta, self.tau = strategy, k, alpha, beta, tau

    @classmethod
    def from_config(cls, cfg) -> "AHNPSupConLoss":
        return cls(strategy=cfg.strategy, k=cfg.k, alpha=cfg.alpha, beta=cfg.beta, tau=cfg.tau)

    def forward(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loss = ahnp_supcon(out["z_ecg"], out["z_img"], out["labels"], strategy=self.strategy, k=self.k,
                           alpha=self.alpha, beta=self.beta, tau=self.tau)
        return {"contrastive_loss": loss}

    def extra_repr(self) -> str:
        return f"strategy={self.strategy}, k={self.k}, alpha={self.alpha}, beta={self.beta}, tau={self.tau}"
