"""Dual-phase objective: CLIP InfoNCE (Radford et al. 2021) between an ECG and the end-diastolic (ED)
and end-systolic (ES) cardiac frames, over the pairs (ECG, ED), (ECG, ES) and (ED, ES)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from xmodal.dist import gather_with_grad
from xmodal.errors import ConfigError
from xmodal.losses.clip import clip_logits_loss
from xmodal.losses.common import at_least_fp32, check_tau, fp32_compute, l2_normalize


def _normalized_lambdas(lambdas: Sequence[float]) -> list[float]:
    if len(lambdas) != 3 or any(x < 0 for x in lambdas) or sum(lambdas) <= 0:
        raise ConfigError(f"loss.lambda_ecg_ed/lambda_ecg_es/lambda_ed_es={tuple(lambdas)} must be 3 non-negative "
                          "weights with a positive sum")
    total = float(sum(lambdas))
    return [float(x) / total for x in lambdas]


def multi_phase_clip(z_ecg: torch.Tensor, z_ed: torch.Tensor, z_es: torch.Tensor, *,
                     lambdas: Sequence[float], tau: float) -> torch.Tensor:
    """``sum_p lambda_p * clip_infonce(pair_p)`` with the lambdas normalised to sum to 1.

    Args:
        z_ecg: ``(B, D)`` ECG embeddings. z_ed: ``(B, D)`` ED-frame embeddings. z_es: ``(B, D)``
            ES-frame embeddings (any scale; L2-normalised here; gathered once with a process group).
        lambdas: weights of (ECG, ED), (ECG, ES), (ED, ES).
        tau: temperature.

    Returns:
        Scalar loss.
    """
    check_tau(tau)
    lam = _normalized_lambdas(lambdas)
    with fp32_compute(z_ecg):
        e, d, s = (l2_normalize(gather_with_grad(at_least_fp32(z))) for z in (z_ecg, z_ed, z_es))
        pairs = ((e, d), (e, s), (d, s))
        return sum(w * clip_logits_loss(a, b, tau) for w, (a, b) in zip(lam, pairs) if w > 0)


class MultiPhaseCLIPLoss(nn.Module):
    """Dual-phase objective as a module: reads ``z_ecg``, ``z_ed``, ``z_es`` (each ``(B, D)``).

    Returns ``{"contrastive_loss": scalar}``.
    """

    def __init__(self, *, lambdas: Sequence[float] = (1.0, 1.0, 1.0), tau: float = 0.07):
        super().__init__()
        check_tau(tau)
        self.lambdas = tuple(_normalized_lambdas(lambdas))
        self.tau = tau

    @classmethod
    def from_config(cls, cfg) -> "MultiPhaseCLIPLoss":
        return cls(lambdas=(cfg.lambda_ecg_ed, cfg.lambda_ecg_es, cfg.lambda_ed_es), tau=cfg.tau)

    def forward(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loss = multi_phase_clip(out["z_ecg"], out["z_ed"], out["z_es"], lambdas=self.lambdas, tau=self.tau)
        return {"contrastive_loss": loss}

    def extra_repr(self) -> str:
        return f"lambdas={self.lambdas}, tau={self.tau}"
