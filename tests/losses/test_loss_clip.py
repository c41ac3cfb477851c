"""CLIP InfoNCE, the ECCL task term and the Dual-phase multi-pair CLIP against plain references."""

from __future__ import annotations

import math

import loss_reference as ref
import pytest
import torch

from xmodal.errors import ConfigError
from xmodal.losses import clip_infonce, masked_bce_with_logits, multi_phase_clip

TAUS = (0.01, 0.07, 0.5)


def randn(*shape, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_()


@pytest.mark.parametrize("tau", TAUS)
def test_clip_matches_reference(tau):
    a, b = randn(7, 5, seed=1, scale=4.0), randn(7, 5, seed=2)
    got, want = clip_infonce(a, b, tau=tau), ref.clip_infonce(a, b, tau=tau)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
    for x, y in zip(torch.autograd.grad(got, (a, b)), torch.autograd.grad(want, (a, b))):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-9)


def test_clip_gradcheck():
    a, b = randn(4, 3, seed=3), randn(4, 3, seed=4)
    assert torch.autograd.gradcheck(lambda x, y: clip_infonce(x, y, tau=0.1), (a, b))


def test_clip_two_orthogonal_pairs():
    # cos = identity: each row has s = 1/tau on the target and 0 elsewhere.
    z = torch.eye(2, dtype=torch.float64)
    got = clip_infonce(z, z, tau=0.25)
    torch.testing.assert_close(got, torch.tensor(math.log(1 + math.exp(-4.0)), dtype=torch.float64))


@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("lambdas", [(1.0, 1.0, 1.0), (2.0, 0.0, 1.0), (0.2, 0.3, 0.5)])
def test_multi_phase_matches_reference(lambdas, tau):
    e, d, s = randn(6, 4, seed=5), randn(6, 4, seed=6), randn(6, 4, seed=7)
    got = multi_phase_clip(e, d, s, lambdas=lambdas, tau=tau)
    want = ref.multi_phase_clip(e, d, s, lambdas=lambdas, tau=tau)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
    for x, y in zip(torch.autograd.grad(got, (e, d, s)), torch.autograd.grad(want, (e, d, s))):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-9)


def test_multi_phase_lambdas_are_normalised_and_checked():
    e, d, s = randn(5, 3, seed=8), randn(5, 3, seed=9), randn(5, 3, seed=10)
    torch.testing.assert_close(multi_phase_clip(e, d, s, lambdas=(1, 0, 0), tau=0.1),
                               multi_phase_clip(e, d, s, lambdas=(7, 0, 0), tau=0.1))
    torch.testing.assert_close(multi_phase_clip(e, d, s, lambdas=(1, 0, 0), tau=0.1), clip_infonce(e, d, tau=0.1))
    assert torch.autograd.gradcheck(lambda *z: multi_phase_clip(*z, lambdas=(1, 2, 3), tau=0.2), (e, d, s))
    with pytest.raises(ConfigError):
        multi_phase_clip(e, d, s, lambdas=(0, 0, 0), tau=0.1)


def test_masked_bce_ignores_nan_targets():
    logits = torch.tensor([0.3, -1.2, 2.0, 0.0], requires_grad=True)
    targets = torch.tensor([1.0, float("nan"), 0.0, float("nan")])
    loss = masked_bce_with_logits(logits, targets)
    want = 0.5 * (math.log1p(math.exp(-0.3)) + math.log1p(math.exp(2.0)))
    torch.testing.assert_close(loss, torch.tensor(want))
    loss.backward()
    assert logits.grad[1] == 0 and logits.grad[3] == 0 and torch.isfinite(logits.grad).all()
    assert masked_bce_with_logits(logits, torch.full((4,), float("nan"))).item() == 0.0


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16_autocast"])
def test_finite_at_tau_0_01_with_near_identical_embeddings(autocast):
    dtype = torch.bfloat16 if autocast else torch.float32
    base = torch.randn(1, 32)
    zs = [(base + 1e-3 * torch.randn(16, 32)).to(dtype).requires_grad_() for _ in range(3)]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        losses = [clip_infonce(zs[0], zs[1], tau=0.01),
                  multi_phase_clip(*zs, lambdas=(1.0, 1.0, 1.0), tau=0.01)]
    for loss in losses:
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
    sum(losses).backward()
    assert all(torch.isfinite(z.grad).all() for z in zs)
