"""Encoders, heads and the registry that builds them from :class:`xmodal.config.ModelConfig`."""

from xmodal.models.cmr import CineEncoder, PhaseEncoder, resample_phase_tokens
from xmodal.models.densenet import DenseNet121
from xmodal.models.ecg import ECGEncoder, token_count
from xmodal.models.heads import ClassificationHead, ProjectionHead
from xmodal.models.phase import even_boundaries, phase_pool, rpeak_phase_boundaries
from xmodal.models.registry import ECG_ENCODERS, IMAGE_ENCODERS, build_ecg_encoder, build_image_encoder
from xmodal.models.small_cnn import SmallCNN
from xmodal.models.weights import load_image_weights

__all__ = [
    "CineEncoder", "ClassificationHead", "DenseNet121", "ECGEncoder", "ECG_ENCODERS", "IMAGE_ENCODERS",
    "PhaseEncoder", "ProjectionHead", "SmallCNN", "build_ecg_encoder", "build_image_encoder",
    "even_boundaries", "load_image_weights", "phase_pool", "resample_phase_tokens",
    "rpeak_phase_boundaries", "token_count",
]
