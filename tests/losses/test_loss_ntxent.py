"""SimCLR NT-Xent against a plain per-anchor reference."""

from __future__ import annotations

import math

import loss_reference as ref
import pytest
import torch

from xmodal.losses import NTXentLoss, ntxent


def randn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()


@pytest.mark.parametrize("tau", (0.01, 0.07, 0.5))
def test_matches_reference(tau):
    z1, z2 = randn(6, 5, seed=1), randn(6, 5, seed=2)
    got, want = ntxent(z1, z2, tau=tau), ref.ntxent(z1, z2, tau=tau)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
    for x, y in zip(torch.autograd.grad(got, (z1, z2)), torch.autograd.grad(want, (z1, z2))):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-9)


def test_gradcheck():
    assert torch.autograd.gradcheck(lambda a, b: ntxent(a, b, tau=0.2), (randn(3, 4, seed=3), randn(3, 4, seed=4)))


def test_two_orthogonal_samples():
    # Views equal, samples orthogonal: positive s = 1/tau, two negatives (the other sample's views) s = 0.
    z = torch.eye(2, dtype=torch.float64)
    torch.testing.assert_close(ntxent(z, z, tau=0.5), torch.tensor(math.log(1 + 2 * math.exp(-2.0)), dtype=torch.float64))


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16_autocast"])
def test_module_finite_at_tau_0_01(autocast):
    dtype = torch.bfloat16 if autocast else torch.float32
    base = torch.randn(1, 32)
    z1, z2 = ((base + 1e-3 * torch.randn(16, 32)).to(dtype).requires_grad_() for _ in range(2))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        terms = NTXentLoss(tau=0.01)({"z1": z1, "z2": z2})
    assert list(terms) == ["ntxent_loss"] and terms["ntxent_loss"].dtype == torch.float32
    terms["ntxent_loss"].backward()
    assert torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()
