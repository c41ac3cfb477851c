"""PTACL (patient- and temporal-alignment contrastive learning): a global ECG <-> cine term plus a
local term that aligns the T phase segments of one subject's ECG with the T cine phases."""

from __future__ import annotations

import torch
import torch.nn as nn

from xmodal.dist import gather_with_grad
from xmodal.errors import ConfigError
from xmodal.losses.ahnp import ahnp_supcon, check_ahnp_args
from xmodal.losses.clip import clip_infonce
from xmodal.losses.common import at_least_fp32, check_tau, fp32_compute, l2_normalize

GLOBAL_LOSSES = ("clip", "ahnp_supcon")


def phase_targets(t: int, sigma: float, *, dim: int = 1, device=None, dtype=torch.float32) -> torch.Tensor:
    """Soft alignment targets ``G[k, t] ∝ exp(-d(k, t)^2 / (2 sigma^2))``, normalised along ``dim``.

    ``d(k, t) = min(|k - t|, T - |k - t|) / T`` is the circular phase distance (a cardiac cycle wraps
    around). ``sigma = 0`` gives the identity. ``G`` is circulant and symmetric, so normalising over
    rows or columns gives the same matrix; ``dim`` only makes the intent explicit.

    Returns:
        ``(T, T)`` non-negative matrix whose slices along ``dim`` sum to 1.
    """
    if sigma == 0:
        return torch.eye(t, device=device, dtype=dtype)
    idx = torch.arange(t, device=device, dtype=dtype)
    gap = (idx[:, None] - idx[None, :]).abs()
    d = torch.minimum(gap, t - gap) / t
    return torch.softmax(-d.square() / (2 * sigma**2), dim=dim)


def local_temporal(e_tokens: torch.Tensor, c_tokens: torch.Tensor, *, sigma: float, tau: float) -> torch.Tensor:
    """Local temporal alignment loss of PTACL.

    Per subject, ``S[k, t] = cos(e_k, c_t) / tau``; each ECG segment k predicts a distribution over cine
    phases (softmax over t, target ``G[k, :]``) and each cine phase t over ECG segments (softmax over k,
    target ``G[:, t]``). The loss is ``0.5 * (mean_k CE_row + mean_t CE_col)`` averaged over subjects.
    With a process group the tokens are gathered so the average is over the global batch.

    Args:
        e_tokens: ``(B, T, D)`` ECG phase-segment embeddings (any scale; L2-normalised here).
        c_tokens: ``(B, T, D)`` cine phase embeddings of the same subjects.
        sigma: Gaussian target width in phase units (fraction of a cycle); 0 = one-to-one.
        tau: temperature.

    Returns:
        Scalar loss.
    """
    check_tau(tau)
    if sigma < 0:
        raise ConfigError(f"loss.sigma={sigma} must be >= 0")
    assert e_tokens.shape == c_tokens.shape and e_tokens.dim() == 3, (e_tokens.shape, c_tokens.shape)
    with fp32_compute(e_tokens):
        e = l2_normalize(gather_with_grad(at_least_fp32(e_tokens)))
        c = l2_normalize(gather_with_grad(at_least_fp32(c_tokens)))
        s = torch.einsum("bkd,btd->bkt", e, c) / tau  # (B, T, T)
        t = s.shape[1]
        g_row = phase_targets(t, sigma, dim=1, device=s.device, dtype=s.dtype)
        g_col = phase_targets(t, sigma, dim=0, device=s.device, dtype=s.dtype)
        ce_row = -(g_row * torch.log_softmax(s, dim=2)).sum(dim=2)  # (B, T): one per ECG segment k
        ce_col = -(g_col * torch.log_softmax(s, dim=1)).sum(dim=1)  # (B, T): one per cine phase t
        return 0.5 * (ce_row.mean() + ce_col.mean())


class PTACLLoss(nn.Module):
    """PTACL objective: global term (``clip`` or ``ahnp_supcon``) plus ``lambda_local`` x local term.

    Reads ``z_ecg (B, D)``, ``z_img (B, D)``, ``labels (B,)`` (used by ``ahnp_supcon`` only),
    ``e_tokens (B, T, D)``, ``c_tokens (B, T, D)``. Returns ``{"contrastive_loss", "local_loss"}``,
    ``local_loss`` already multiplied by ``lambda_local`` (omitted when ``lambda_local == 0``).
    """

    def __init__(self, *, global_loss: str = "clip", sigma: float = 0.1, lambda_local: float = 1.0,
                 tau: float = 0.07, strategy: str = "none", k: float = 0.075, alpha: float = 1.0,
                 beta: float = 1.0):
        super().__init__()
        if global_loss not in GLOBAL_LOSSES:
            raise ConfigError(f"loss.global_loss={global_loss!r} is not one of {', '.join(GLOBAL_LOSSES)}")
        check_tau(tau)
        if global_loss == "ahnp_supcon":
            check_ahnp_args(strategy, k, alpha, beta, tau)
        if sigma < 0 or lambda_local < 0:
            raise ConfigError(f"loss.sigma={sigma} and loss.lambda_local={lambda_local} must be >= 0")
        self.global_loss, self.sigma, self.lambda_local, self.tau = global_loss, sigma, lambda_local, tau
        self.strategy, self.k, self.alpha, self.beta = strategy, k, alpha, beta

    @classmethod
    def from_config(cls, cfg) -> "PTACLLoss":
        return cls(global_loss=cfg.global_loss, sigma=cfg.sigma, lambda_local=cfg.lambda_local, tau=cfg.tau,
                   strategy=cfg.strategy, k=cfg.k, alpha=cfg.alpha, beta=cfg.beta)

    def forward(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.global_loss == "clip":
            glob = clip_infonce(out["z_ecg"], out["z_img"], tau=self.tau)
        else:
            glob = ahnp_supcon(out["z_ecg"], out["z_img"], out["labels"], strategy=self.strategy, k=self.k,
                               alpha=self.alpha, beta=self.beta, tau=self.tau)
        terms = {"contrastive_loss": glob}
        if self.lambda_local > 0:
            terms["local_loss"] = self.lambda_local * local_temporal(out["e_tokens"], out["c_tokens"],
                                                                     sigma=self.sigma, tau=self.tau)
        return terms

    def extra_repr(self) -> str:
        return (f"global_loss={self.global_loss}, sigma={self.sigma}, lambda_local={self.lambda_local}, "
                f"tau={self.tau}")
