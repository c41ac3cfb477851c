"""Fine-tuning: every weight, or the head alone on a frozen encoder (``finetune.freeze_encoder``)."""

from __future__ import annotations

import torch

from xmodal.config import ExperimentConfig, apply_overrides
from xmodal.stages import finetune
from xmodal.stages import loop as L
from xmodal.stages import session
from xmodal.storage import Storage


def _split(n: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    label = (torch.arange(n) % 2).float()
    ecg = torch.randn(n, 12, 100, generator=g) + label[:, None, None]  # learnable
    return {"ecg": ecg, "label": label}


def _trained(tmp_path, freeze: bool):
    """(initial encoder state, initial head state, the trained model's state)."""
    cfg = apply_overrides(ExperimentConfig(), {
        "model.ecg_width": 16, "model.ecg_layers": 1, "model.ecg_heads": 2, "finetune.epochs": 2,
        "finetune.batch_size": 8, "finetune.lr": 0.01, "finetune.freeze_encoder": freeze})
    torch.manual_seed(1)
    init = finetune.ECGClassifier(cfg, 100).encoder.state_dict()
    run = session.InProcess(f"ft-{freeze}", {}, Storage(str(tmp_path)))
    with session.active(run):
        w = L.setup_worker(0)  # seeds as train_phase does: the head it builds starts where this one does
        head = finetune.ECGClassifier(cfg, 100).head.state_dict()
        st = finetune.train_phase(cfg, w, _split(32, 0), _split(16, 1), init)
    return init, head, st.best_state["net"]


def test_a_frozen_encoder_keeps_its_weights_and_statistics_and_the_head_trains(tmp_path):
    init, head, net = _trained(tmp_path, freeze=True)
    for k, v in init.items():  # weights and batch-norm running statistics alike
        torch.testing.assert_close(net[f"encoder.{k}"], v, msg=k)
    assert all(not torch.equal(net[f"head.{k}"], v) for k, v in head.items())


def test_full_fine_tuning_moves_the_encoder(tmp_path):
    init, head, net = _trained(tmp_path, freeze=False)
    assert any(not torch.equal(net[f"encoder.{k}"], v) for k, v in init.items() if v.is_floating_point())
