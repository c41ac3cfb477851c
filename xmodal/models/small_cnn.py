"""A small 2-D CNN: the CPU demo / test image encoder and the per-frame backbone of the CMR encoders."""

from __future__ import annotations

import torch
from torch import nn


def conv_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """Conv3x3-BN-ReLU-MaxPool2: ``(B, in_ch, H, W)`` -> ``(B, out_ch, ceil(H/2), ceil(W/2))``."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2, ceil_mode=True),
    )


class SmallCNN(nn.Module):
    """``n_blocks`` conv blocks with channels ``width * (1, 2, 4, 4, ...)``, then global average pool.

    ``(B, in_chans, H, W)`` -> ``{"embedding": (B, out_dim)}`` with ``out_dim = width * min(2**(n_blocks-1), 4)``.
    """

    def __init__(self, in_chans: int = 1, width: int = 32, n_blocks: int = 4):
        super().__init__()
        channels = [width * min(2**i, 4) for i in range(n_blocks)]
        blocks, prev = [], in_chans
        for ch in channels:
            blocks.append(conv_block(prev, ch))
            prev = ch
        self.in_chans = in_chans
        self.blocks = nn.Sequential(*blocks)
        self.out_dim = channels[-1]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: ``(B, in_chans, H, W)`` -> ``{"embedding": (B, out_dim)}``."""
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"{type(self).__name__} expects (B, {self.in_chans}, H, W), got {tuple(x.shape)}")
        return {"embedding": self.blocks(x).mean(dim=(2, 3))}
