"""Loss registry: ``LossConfig.name`` -> loss module class (explicit, no string matching).

    loss_fn = build_loss(cfg.loss)
    terms = loss_fn(model_outputs)          # {"contrastive_loss": ..., "task_loss": ..., ...}
    total = sum(v for k, v in terms.items() if k.endswith("_loss"))

Every class takes its hyperparameters as keyword arguments and has ``from_config(LossConfig)``.
"""

from __future__ import annotations

import torch.nn as nn

from xmodal.config import LossConfig
from xmodal.errors import ConfigError
from xmodal.losses.ahnp import AHNPSupConLoss
from xmodal.losses.clip import CLIPTaskLoss
from xmodal.losses.multi_phase import MultiPhaseCLIPLoss
from xmodal.losses.temporal import PTACLLoss

LOSSES: dict[str, type[nn.Module]] = {
    "ahnp_supcon": AHNPSupConLoss,  # CroMoTEX
    "clip_task": CLIPTaskLoss,  # ECCL
    "ptacl": PTACLLoss,  # PTACL
    "multi_phase_clip": MultiPhaseCLIPLoss,  # Dual-phase
}


def build_loss(cfg: LossConfig) -> nn.Module:
    """The loss module named by ``cfg.name``, built from ``cfg``'s hyperparameters.

    Raises:
        ConfigError: unknown name (the message lists the valid ones) or unusable hyperparameters.
    """
    if cfg.name not in LOSSES:
        raise ConfigError(f"loss.name={cfg.name!r} is not a registered loss; valid: {', '.join(LOSSES)}")
    return LOSSES[cfg.name].from_config(cfg)
