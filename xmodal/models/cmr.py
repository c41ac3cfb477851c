"""Cardiac MR encoders.

- :class:`CineEncoder` (ECCL, PTACL): a cine ``(B, F, H, W)`` -> per-frame CNN features -> temporal
  Transformer with a learned frame position embedding -> frame tokens and their mean.
  :func:`resample_phase_tokens` maps the F frame tokens of one cardiac cycle to T phase tokens so
  they line up with the ECG phase tokens (:func:`xmodal.models.phase.phase_pool`).
- :class:`PhaseEncoder` (Dual-phase): one phase image (ED or ES) ``(B, 1, H, W)``, or a short stack
  of S slices as channels ``(B, S, H, W)`` -> embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from xmodal.models.small_cnn import SmallCNN


def resample_phase_tokens(tokens: torch.Tensor, segments: int) -> torch.Tensor:
    """Periodic linear resampling of frame tokens over one cardiac cycle.

    Args:
        tokens: ``(B, F, D)``, frame ``f`` at cycle phase ``f / F``.
        segments: T.

    Returns:
        ``(B, T, D)``; token ``t`` is at phase ``t / T``, interpolated between the two nearest frames
        (the last frame wraps to the first).
    """
    _, f, _ = tokens.shape
    if f == segments:
        return tokens
    pos = torch.arange(segments, device=tokens.device, dtype=torch.float64) * (f / segments)
    lo = pos.floor().long() % f
    hi = (lo + 1) % f
    w = (pos - pos.floor()).to(tokens.dtype).view(1, segments, 1)
    return tokens[:, lo] * (1 - w) + tokens[:, hi] * w


class CineEncoder(nn.Module):
    """Per-frame :class:`SmallCNN` + temporal Transformer.

    Args:
        width: SmallCNN width; token width ``D = SmallCNN(width).out_dim`` (4 * width).
        n_frames: frames the learned position embedding is sized for; other frame counts use it
            linearly interpolated.
        layers, heads, dropout: temporal Transformer (``heads`` must divide D).

    ``out_dim = D``.
    """

    def __init__(self, width: int = 32, n_frames: int = 50, layers: int = 2, heads: int = 4,
                 dropout: float = 0.1):
        super().__init__()
        self.frame_cnn = SmallCNN(in_chans=1, width=width)
        d = self.out_dim = self.frame_cnn.out_dim
        assert d % heads == 0, f"token width {d} must be divisible by heads {heads}"
        self.frame_pos = nn.Parameter(torch.zeros(1, n_frames, d))
        nn.init.trunc_normal_(self.frame_pos, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model=d, nhead=heads, dim_feedforward=4 * d, dropout=dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )
        layer.self_attn.dropout = 0.0  # fused attention kernel; residual dropout stays (see ECGEncoder)
        self.temporal = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)

    def _positions(self, n_frames: int) -> torch.Tensor:
        """``(1, n_frames, D)`` frame position embedding."""
        if n_frames == self.frame_pos.shape[1]:
            return self.frame_pos
        pos = F.interpolate(self.frame_pos.transpose(1, 2), size=n_frames, mode="linear", align_corners=False)
        return pos.transpose(1, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: ``(B, F, H, W)`` -> ``{"embedding": (B, D), "tokens": (B, F, D)}``."""
        b, f, h, w = x.shape
        feats = self.frame_cnn(x.reshape(b * f, 1, h, w))["embedding"].view(b, f, -1)
        tokens = self.norm(self.temporal(feats + self._positions(f)))
        return {"embedding": tokens.mean(dim=1), "tokens": tokens}


class PhaseEncoder(nn.Module):
    """2-D CNN for one cardiac phase: ``(B, in_chans, H, W)`` -> ``{"embedding": (B, out_dim)}``.

    ``in_chans`` is 1 for a single image, or S for a stack of S slices given as channels.
    """

    def __init__(self, in_chans: int = 1, width: int = 32):
        super().__init__()
        self.cnn = SmallCNN(in_chans=in_chans, width=width)
        self.out_dim = self.cnn.out_dim

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.cnn(x)
