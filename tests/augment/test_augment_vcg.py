import math

import pytest
import torch

from xmodal.augment.vcg import (AVF, AVL, AVR, DOWER, III, INDEPENDENT, INVERSE_DOWER, LEADS, VCGAugment,
                                derive_limb_leads, rotation_matrices, time_mask)
from xmodal.config import SSLConfig

# ||INVERSE_DOWER @ DOWER - I||_2 measured as 1.05e-3; signals in the Dower lead space come back
# with a relative error below that times the condition number of DOWER (~3), so 5e-3 is safe.
DOWER_ROUNDTRIP_REL_ERR = 5e-3


def ecg_from_vcg(vcg: torch.Tensor) -> torch.Tensor:
    """A 12-lead ECG ``(B, 12, L)`` that lies exactly in the Dower lead space of ``vcg (B, 3, L)``."""
    x = torch.zeros(vcg.shape[0], 12, vcg.shape[2])
    x[:, list(INDEPENDENT)] = torch.einsum("lk,bkt->blt", DOWER, vcg)
    return derive_limb_leads(x)


def test_lead_order_and_matrix_shapes():
    assert LEADS[III] == "III" and LEADS[AVR] == "aVR" and LEADS[AVL] == "aVL" and LEADS[AVF] == "aVF"
    assert [LEADS[i] for i in INDEPENDENT] == ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    assert INVERSE_DOWER.shape == (3, 8) and DOWER.shape == (8, 3)
    assert torch.linalg.matrix_norm(INVERSE_DOWER @ DOWER - torch.eye(3), ord=2) < 1.1e-3


def test_derived_leads_land_in_their_slots():
    x = torch.zeros(1, 12, 1)
    x[0, 0, 0], x[0, 1, 0] = 2.0, 6.0  # I = 2, II = 6: every derived lead has a distinct value
    out = derive_limb_leads(x)[0, :, 0]
    assert out[III] == 4.0  # II - I
    assert out[AVR] == -4.0  # -(I + II) / 2
    assert out[AVL] == -1.0  # I - II / 2
    assert out[AVF] == 5.0  # II - I / 2


def test_augmented_output_has_consistent_limb_leads():
    g = torch.Generator().manual_seed(1)
    y = VCGAugment()(torch.randn(4, 12, 50, generator=g), g)
    lead_i, lead_ii = y[:, 0], y[:, 1]
    torch.testing.assert_close(y[:, III], lead_ii - lead_i)
    torch.testing.assert_close(y[:, AVR], -(lead_i + lead_ii) / 2)
    torch.testing.assert_close(y[:, AVL], lead_i - lead_ii / 2)
    torch.testing.assert_close(y[:, AVF], lead_ii - lead_i / 2)


def test_identity_rotation_and_unit_scale_reproduce_input():
    g = torch.Generator().manual_seed(0)
    x = ecg_from_vcg(torch.randn(3, 3, 200, generator=g))
    y = VCGAugment(max_angle_deg=0.0, scale_min=1.0, scale_max=1.0)(x, g)
    rel = (y - x).norm() / x.norm()
    assert rel < DOWER_ROUNDTRIP_REL_ERR


def test_rotation_matrices_are_rotations():
    angles = torch.tensor([[0.3, -0.7, 1.1], [0.0, 0.0, 0.0]])
    r = rotation_matrices(angles)
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(2))
    torch.testing.assert_close(r[1], torch.eye(3))
    z = rotation_matrices(torch.tensor([[0.0, 0.0, math.pi / 2]]))[0]
    torch.testing.assert_close(z @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6, rtol=0)


def test_rotations_differ_per_sample():
    g = torch.Generator().manual_seed(0)
    maps = VCGAugment().lead_maps(4, g)
    assert maps.shape == (4, 8, 8)
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.allclose(maps[i], maps[j])
    # same input in every row -> different outputs
    x = ecg_from_vcg(torch.randn(1, 3, 64, generator=g)).expand(4, -1, -1)
    y = VCGAugment()(x, g)
    assert not torch.allclose(y[0], y[1])


def test_shape_dtype_device_preserved():
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(2, 12, 100, dtype=dtype)
        y = VCGAugment(mask_fraction=0.1)(x)
        assert y.shape == x.shape and y.dtype == dtype and y.device == x.device


def test_time_mask_zeroes_one_contiguous_span():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 12, 100, generator=g) + 10.0  # no accidental zeros
    y = time_mask(x, 0.25, g)
    for i in range(5):
        zero = (y[i] == 0).all(dim=0)  # (L,) all leads zero
        idx = zero.nonzero().flatten()
        assert len(idx) == 25 and (idx.diff() == 1).all()
        assert ((y[i] == 0).any(dim=0) == zero).all()  # nothing else touched
        torch.testing.assert_close(y[i][:, ~zero], x[i][:, ~zero])
    assert time_mask(x, 0.0, g) is x


def test_deterministic_with_seeded_generator():
    x = torch.randn(3, 12, 80)
    aug = VCGAugment(mask_fraction=0.2)
    a = aug(x, torch.Generator().manual_seed(7))
    b = aug(x, torch.Generator().manual_seed(7))
    c = aug(x, torch.Generator().manual_seed(8))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)


def test_from_config():
    aug = VCGAugment.from_config(SSLConfig(vcg_max_angle_deg=30.0, vcg_scale_min=0.9, vcg_scale_max=1.2))
    assert aug.max_angle == pytest.approx(math.radians(30)) and (aug.scale_min, aug.scale_max) == (0.9, 1.2)
