"""PTACL local temporal alignment against a plain per-subject, per-phase reference."""

from __future__ import annotations

import math

import loss_reference as ref
import pytest
import torch

from xmodal.losses import local_temporal, phase_targets


def randn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()


@pytest.mark.parametrize("tau", (0.01, 0.07, 0.5))
@pytest.mark.parametrize("sigma", (0.0, 0.05, 0.1, 0.5))
def test_matches_reference(sigma, tau):
    e, c = randn(3, 5, 4, seed=1), randn(3, 5, 4, seed=2)
    got = local_temporal(e, c, sigma=sigma, tau=tau)
    want = ref.local_temporal(e, c, sigma=sigma, tau=tau)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
    for x, y in zip(torch.autograd.grad(got, (e, c)), torch.autograd.grad(want, (e, c))):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("sigma", (0.0, 0.2))
def test_gradcheck(sigma):
    e, c = randn(2, 4, 3, seed=3), randn(2, 4, 3, seed=4)
    assert torch.autograd.gradcheck(lambda a, b: local_temporal(a, b, sigma=sigma, tau=0.2), (e, c))


def test_targets_are_circular_and_doubly_normalised():
    g = phase_targets(8, 0.1, dtype=torch.float64)
    torch.testing.assert_close(g.sum(1), torch.ones(8, dtype=torch.float64))
    torch.testing.assert_close(g.sum(0), torch.ones(8, dtype=torch.float64))
    assert torch.isclose(g[0, 1], g[0, 7]) and g[0, 1] > g[0, 2]  # phases 0 and 7 are neighbours
    assert torch.equal(phase_targets(5, 0.0), torch.eye(5))


def test_orthogonal_tokens_sigma_0():
    # Tokens are the standard basis for both modalities: S = I / tau, target = identity, so every row
    # and column gives log(1 + (T - 1) e^{-1/tau}).
    t, tau = 4, 0.5
    e = torch.eye(t, dtype=torch.float64).expand(2, t, t)
    torch.testing.assert_close(local_temporal(e, e, sigma=0.0, tau=tau),
                               torch.tensor(math.log(1 + (t - 1) * math.exp(-1 / tau)), dtype=torch.float64))


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16_autocast"])
def test_finite_at_tau_0_01(autocast):
    dtype = torch.bfloat16 if autocast else torch.float32
    base = torch.randn(1, 1, 32)
    e, c = ((base + 1e-3 * torch.randn(4, 8, 32)).to(dtype).requires_grad_() for _ in range(2))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = local_temporal(e, c, sigma=0.1, tau=0.01)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(e.grad).all() and torch.isfinite(c.grad).all()
