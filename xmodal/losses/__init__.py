"""Contrastive losses of CroMoTEX, ECCL, PTACL and Dual-phase, plus SimCLR's NT-Xent.

Functions take projected embeddings (any scale; L2-normalised inside) and return a scalar; modules
read a dict of model outputs and return named ``*_loss`` terms. See ``docs/losses.md``.
"""

from xmodal.losses.ahnp import AHNPSupConLoss, ahnp_supcon, hard_negative_log_weights
from xmodal.losses.clip import CLIPTaskLoss, clip_infonce, masked_bce_with_logits
from xmodal.losses.multi_phase import MultiPhaseCLIPLoss, multi_phase_clip
from xmodal.losses.ntxent import NTXentLoss, ntxent
from xmodal.losses.registry import LOSSES, build_loss
from xmodal.losses.temporal import PTACLLoss, local_temporal, phase_targets

__all__ = [
    "LOSSES", "build_loss",
    "AHNPSupConLoss", "CLIPTaskLoss", "PTACLLoss", "MultiPhaseCLIPLoss", "NTXentLoss",
    "ahnp_supcon", "hard_negative_log_weights", "clip_infonce", "masked_bce_with_logits",
    "local_temporal", "phase_targets", "multi_phase_clip", "ntxent",
]
