"""Encoders by config name: ``model.ecg_encoder`` and ``model.image_encoder`` pick from these dicts.

    ecg = build_ecg_encoder(cfg.model, seq_len=1000)   # ECGEncoder
    img = build_image_encoder(cfg.model)               # loads cfg.model.image_weights when set

Adding an encoder = one builder function + one dict entry.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from xmodal.config import ModelConfig
from xmodal.errors import ConfigError
from xmodal.models.cmr import CineEncoder, PhaseEncoder
from xmodal.models.densenet import DenseNet121
from xmodal.models.ecg import ECGEncoder
from xmodal.models.small_cnn import SmallCNN
from xmodal.models.weights import load_image_weights


def _cromotex_transformer(cfg: ModelConfig, seq_len: int) -> nn.Module:
    if cfg.ecg_width % cfg.ecg_heads:
        raise ConfigError(
            f"model.ecg_width={cfg.ecg_width} must be divisible by model.ecg_heads={cfg.ecg_heads}"
        )
    return ECGEncoder(seq_len=seq_len, width=cfg.ecg_width, layers=cfg.ecg_layers,
                      heads=cfg.ecg_heads, dropout=cfg.ecg_dropout,
                      attn_dropout=cfg.ecg_attn_dropout)


ECG_ENCODERS: dict[str, Callable[[ModelConfig, int], nn.Module]] = {
    "cromotex_transformer": _cromotex_transformer,
}

# Image inputs are grayscale: every image encoder takes one channel (or F frames for cines).
IMAGE_ENCODERS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "densenet121": lambda cfg: DenseNet121(in_chans=1),
    "small_cnn": lambda cfg: SmallCNN(in_chans=1, width=cfg.image_width),
    "cine_transformer": lambda cfg: CineEncoder(width=cfg.image_width),
    "phase_cnn": lambda cfg: PhaseEncoder(in_chans=1, width=cfg.image_width),
}


def _lookup(table: dict, name: str, key: str) -> Callable:
    if name not in table:
        raise ConfigError(f"{key}={name!r} is not a known encoder; valid: {', '.join(sorted(table))}")
    return table[name]


def build_ecg_encoder(cfg: ModelConfig, seq_len: int) -> nn.Module:
    """The ECG encoder named by ``cfg.ecg_encoder`` for inputs of ``seq_len`` samples."""
    return _lookup(ECG_ENCODERS, cfg.ecg_encoder, "model.ecg_encoder")(cfg, seq_len)


def build_image_encoder(cfg: ModelConfig) -> nn.Module:
    """The image encoder named by ``cfg.image_encoder``, with ``cfg.image_weights`` loaded if set.

    Raises:
        ConfigError: unknown name.
        RecordError: the weights file is missing or does not match (names the file and keys).
    """
    model = _lookup(IMAGE_ENCODERS, cfg.image_encoder, "model.image_encoder")(cfg)
    if cfg.image_weights:
        load_image_weights(model, cfg.image_weights)
    return model
