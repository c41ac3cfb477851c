"""Loss registry and loss modules: names, errors, and the named ``*_loss`` terms the trainer sums."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from xmodal.config import LossConfig
from xmodal.errors import ConfigError
from xmodal.losses import (LOSSES, NTXentLoss, ahnp_supcon, build_loss, clip_infonce, local_temporal,
                           masked_bce_with_logits, multi_phase_clip, ntxent)

B, T, D = 8, 4, 16


def outputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, requires_grad=True)  # noqa: E731
    return {
        "z_ecg": r(B, D), "z_img": r(B, D), "z_ed": r(B, D), "z_es": r(B, D),
        "labels": torch.tensor([0, 1, 0, 1, 1, 0, 0, 1]),
        "e_tokens": r(B, T, D), "c_tokens": r(B, T, D),
        "task_logits": r(B), "task_targets": torch.tensor([1.0, 0.0, float("nan"), 1.0, 0.0, 1.0, 0.0, 0.0]),
    }


def total(terms: dict[str, torch.Tensor]) -> torch.Tensor:
    """What the trainer does (xmodal.stages.loop.sum_losses)."""
    return sum(v for k, v in terms.items() if k.endswith("_loss"))


def test_registry_names():
    assert set(LOSSES) == {"ahnp_supcon", "clip_task", "ptacl", "multi_phase_clip"}


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError) as err:
        build_loss(LossConfig(name="supcon"))
    for name in LOSSES:
        assert name in str(err.value)


@pytest.mark.parametrize("cfg", [LossConfig(strategy="hardest"), LossConfig(tau=0.0),
                                 LossConfig(name="ptacl", global_loss="mse"),
                                 LossConfig(name="multi_phase_clip", lambda_ecg_ed=0.0, lambda_ecg_es=0.0, lambda_ed_es=0.0)])
def test_bad_hyperparameters_raise_config_error(cfg):
    with pytest.raises(ConfigError):
        build_loss(cfg)


def test_ahnp_module():
    cfg = LossConfig()  # defaults: ahnp_supcon, topk
    out = outputs()
    terms = build_loss(cfg)(out)
    assert list(terms) == ["contrastive_loss"]
    want = ahnp_supcon(out["z_ecg"], out["z_img"], out["labels"], strategy=cfg.strategy, k=cfg.k,
                       alpha=cfg.alpha, beta=cfg.beta, tau=cfg.tau)
    torch.testing.assert_close(total(terms), want)


@pytest.mark.parametrize("lambda_task", [0.0, 0.5])
def test_clip_task_module(lambda_task):
    out = outputs()
    del out["labels"]  # not needed by ECCL
    if lambda_task == 0:
        del out["task_logits"], out["task_targets"]  # not read when the task term is off
    terms = build_loss(LossConfig(name="clip_task", tau=0.07, lambda_task=lambda_task))(out)
    assert set(terms) == ({"contrastive_loss", "task_loss"} if lambda_task else {"contrastive_loss"})
    want = clip_infonce(out["z_ecg"], out["z_img"], tau=0.07)
    if lambda_task:
        want = want + lambda_task * masked_bce_with_logits(out["task_logits"], out["task_targets"])
    torch.testing.assert_close(total(terms), want)
    total(terms).backward()
    assert out["z_ecg"].grad is not None


@pytest.mark.parametrize("global_loss", ["clip", "ahnp_supcon"])
def test_ptacl_module(global_loss):
    cfg = LossConfig(name="ptacl", global_loss=global_loss, sigma=0.1, lambda_local=2.0, tau=0.1, strategy="exp")
    out = outputs()
    terms = build_loss(cfg)(out)
    assert set(terms) == {"contrastive_loss", "local_loss"}
    if global_loss == "clip":
        glob = clip_infonce(out["z_ecg"], out["z_img"], tau=0.1)
    else:
        glob = ahnp_supcon(out["z_ecg"], out["z_img"], out["labels"], strategy="exp", k=cfg.k, alpha=cfg.alpha,
                           beta=cfg.beta, tau=0.1)
    torch.testing.assert_close(terms["contrastive_loss"], glob)
    torch.testing.assert_close(terms["local_loss"], 2.0 * local_temporal(out["e_tokens"], out["c_tokens"],
                                                                         sigma=0.1, tau=0.1))


def test_multi_phase_module():
    cfg = LossConfig(name="multi_phase_clip", lambda_ecg_ed=1.0, lambda_ecg_es=2.0, lambda_ed_es=1.0, tau=0.1)
    out = outputs()
    terms = build_loss(cfg)(out)
    want = multi_phase_clip(out["z_ecg"], out["z_ed"], out["z_es"], lambdas=(1.0, 2.0, 1.0), tau=0.1)
    torch.testing.assert_close(terms["contrastive_loss"], want)


def test_every_config_name_builds_and_sums_to_a_finite_scalar():
    for name in LOSSES:
        terms = build_loss(dataclasses.replace(LossConfig(), name=name, lambda_task=1.0))(outputs())
        assert terms and all(k.endswith("_loss") and v.ndim == 0 for k, v in terms.items())
        assert torch.isfinite(total(terms))


def test_ntxent_module():
    out = outputs()
    terms = NTXentLoss(tau=0.1)({"z1": out["z_ecg"], "z2": out["z_img"]})
    torch.testing.assert_close(terms["ntxent_loss"], ntxent(out["z_ecg"], out["z_img"], tau=0.1))
