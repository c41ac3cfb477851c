"""The image side of each method: which encoder sees which part of the stored image.

- ``cxr`` (CroMoTEX): one chest X-ray ``[B, S, S]`` -> 2-D encoder.
- ``cine`` (ECCL, PTACL): a cine ``[B, F, S, S]`` -> cine encoder; PTACL also uses its frame tokens,
  resampled to the ECG's T phase segments.
- ``phases`` (Dual-phase): end-diastole (frame 0, ECG-triggered) and end-systole (frame ``es_fraction * F``)
  through one shared phase encoder.

Stored images are uint8; ``normalise`` maps them to roughly zero mean, unit scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from xmodal.config import ExperimentConfig
from xmodal.methods import method
from xmodal.models.cmr import resample_phase_tokens
from xmodal.models.registry import build_image_encoder

ES_FRACTION = 0.35  # end-systole sits about a third of the way through the R-R cycle


def normalise(u8: torch.Tensor) -> torch.Tensor:
    return (u8.float() / 255.0 - 0.5) / 0.25


def image_mode(cfg: ExperimentConfig, image_kind: str) -> str:
    """``cxr`` for a CXR cohort, else the method's view of the cine (:attr:`xmodal.methods.Method.image_view`)."""
    return "cxr" if image_kind == "cxr" else method(cfg.method).image_view


class ImageModel(nn.Module):
    """Encoder + the per-method view of the stored image. ``out_dim`` is the pooled feature size."""

    def __init__(self, cfg: ExperimentConfig, image_kind: str):
        super().__init__()
        self.mode = image_mode(cfg, image_kind)
        self.segments = cfg.model.ecg_segments
        self.encoder = build_image_encoder(cfg.model)
        self.out_dim = self.encoder.out_dim * (2 if self.mode == "phases" else 1)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images: ``(B, S, S)`` or ``(B, F, S, S)`` uint8 -> ``{"embedding": (B, out_dim), ...}``.

        Extra keys: ``tokens`` ``(B, T, D)`` for cines; ``ed``/``es`` ``(B, D)`` for ``phases``.
        """
        x = normalise(images)
        if self.mode == "cxr":
            return {"embedding": self.encoder(x[:, None])["embedding"]}
        if self.mode == "cine":
            out = self.encoder(x)
            return {"embedding": out["embedding"], "tokens": resample_phase_tokens(out["tokens"], self.segments)}
        es_idx = int(round(ES_FRACTION * x.shape[1])) % x.shape[1]
        ed = self.encoder(x[:, 0:1])["embedding"]
        es = self.encoder(x[:, es_idx:es_idx + 1])["embedding"]
        return {"embedding": torch.cat([ed, es], dim=1), "ed": ed, "es": es}


class ImageClassifier(nn.Module):
    """Image model + multi-label head: ``(B, ...)`` uint8 images -> ``(B, n_labels)`` logits."""

    def __init__(self, image: ImageModel, n_labels: int):
        super().__init__()
        from xmodal.models.heads import ClassificationHead

        self.image = image
        self.head = ClassificationHead(image.out_dim, n_labels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.image(images)["embedding"])


def masked_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits averaged over known targets (NaN = unknown). Shapes ``(B, L)`` or ``(B,)``."""
    known = ~torch.isnan(targets)
    if not known.any():
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[known].float(), targets[known].float())
