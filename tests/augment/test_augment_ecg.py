import pytest
import torch

from xmodal.augment.ecg import PRECORDIAL, Compose, Jitter, LeadPermutation, TimeWarp
from xmodal.augment.vcg import VCGAugment
from xmodal.augment.views import TwoViews

ALL = [TimeWarp(), Jitter(), LeadPermutation(p=1.0, leads="all"), VCGAugment(mask_fraction=0.1)]


@pytest.mark.parametrize("transform", ALL, ids=lambda t: type(t).__name__)
def test_shape_dtype_and_determinism(transform):
    x = torch.randn(3, 12, 100, dtype=torch.float64)
    a = transform(x, torch.Generator().manual_seed(5))
    b = transform(x, torch.Generator().manual_seed(5))
    assert a.shape == x.shape and a.dtype == x.dtype
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, x)


def test_time_warp_zero_stretch_is_identity_and_endpoints_fixed():
    x = torch.randn(2, 12, 100)
    torch.testing.assert_close(TimeWarp(max_stretch=0.0)(x), x)
    y = TimeWarp(max_stretch=0.5)(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(y[..., 0], x[..., 0])
    torch.testing.assert_close(y[..., -1], x[..., -1])


def test_time_warp_is_a_monotone_resampling():
    ramp = torch.arange(100, dtype=torch.float32).expand(4, 12, 100)  # value = time index
    y = TimeWarp(max_stretch=0.3)(ramp, torch.Generator().manual_seed(1))
    assert (y.diff(dim=-1) > 0).all()  # positions increase: a stretch, never a reversal
    assert not torch.allclose(y[0], y[1])  # per-sample warps
    torch.testing.assert_close(y[:, 0], y[:, 5])  # same warp on every lead


def test_jitter_noise_level():
    x = torch.zeros(8, 12, 1000)
    y = Jitter(sigma=0.1)(x, torch.Generator().manual_seed(0))
    assert abs(y.std().item() - 0.1) < 0.005


def test_lead_permutation_precordial_only():
    x = torch.arange(12, dtype=torch.float32).view(1, 12, 1).expand(16, 12, 5)
    y = LeadPermutation(p=1.0, leads="precordial")(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(y[:, :6], x[:, :6])  # limb leads stay
    for row in y[:, :, 0]:
        assert sorted(row[6:].tolist()) == list(PRECORDIAL)  # a permutation of V1..V6
    assert not all(torch.equal(row, x[0, :, 0]) for row in y[:, :, 0])


def test_lead_permutation_probability_zero_is_identity():
    x = torch.randn(4, 12, 10)
    torch.testing.assert_close(LeadPermutation(p=0.0, leads="all")(x), x)
    with pytest.raises(ValueError):
        LeadPermutation(leads="limb")


def test_compose_and_two_views():
    x = torch.randn(4, 12, 100)
    views = TwoViews(Compose([VCGAugment(), TimeWarp(), Jitter()]))
    v1, v2 = views(x, torch.Generator().manual_seed(0))
    assert v1.shape == v2.shape == x.shape
    assert not torch.allclose(v1, v2)
    w1, w2 = views(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close((v1, v2), (w1, w2), rtol=0, atol=0)
