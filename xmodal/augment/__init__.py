"""Batched ECG augmentations ``(B, 12, L)``: 3KG VCG rotation/scaling, time warp, jitter, lead permutation."""

from xmodal.augment.ecg import Compose, Jitter, LeadPermutation, TimeWarp
from xmodal.augment.vcg import VCGAugment, derive_limb_leads, time_mask
from xmodal.augment.views import TwoViews

__all__ = ["Compose", "Jitter", "LeadPermutation", "TimeWarp", "TwoViews", "VCGAugment",
           "derive_limb_leads", "time_mask"]
