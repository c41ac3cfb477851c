"""3KG-style spatial augmentation of 12-lead ECGs through the vectorcardiogram (VCG).

Gopal et al. 2021, "3KG: Contrastive Learning of 12-Lead ECGs using Physiologically-Inspired
Augmentations". The 8 independent leads (I, II, V1-V6) are mapped to a VCG (X, Y, Z) with the
inverse Dower matrix, the VCG is rotated (each Euler angle ~ U(-theta, theta)) and scaled per axis
(~ U(s_min, s_max)), mapped back to 8 leads with the Dower matrix, and III, aVR, aVL, aVF are
re-derived from I and II. Lead order everywhere: I, II, III, aVR, aVL, aVF, V1-V6.

Back-projection uses the published Dower et al. 1980 coefficients (not the pseudo-inverse of the
inverse Dower). They are a near-inverse: ``||INVERSE_DOWER @ DOWER - I_3||_2 ~= 1.05e-3``, so an
identity rotation with unit scale reproduces any ECG that lies in the Dower lead space to about
1e-3 relative error (tested). A real ECG is also projected onto that 3-D lead space, as in 3KG.
"""

from __future__ import annotations

import math

import torch

from xmodal.augment._rng import uniform

LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
INDEPENDENT = (0, 1, 6, 7, 8, 9, 10, 11)  # I, II, V1..V6 in the 12-lead order
I, II, III, AVR, AVL, AVF = range(6)

# Inverse Dower matrix (Edenbrandt & Pahlm 1988, "Vectorcardiogram synthesized from a 12-lead ECG:
# superiority of the inverse Dower matrix", J Electrocardiol 21(4)). Rows X, Y, Z; columns in the
# order of INDEPENDENT: I, II, V1, V2, V3, V4, V5, V6 (the paper lists V1-V6 first, then I, II).
INVERSE_DOWER = torch.tensor([
    #  I       II      V1      V2      V3      V4      V5      V6
    [0.156, -0.010, -0.172, -0.074, 0.122, 0.231, 0.239, 0.194],  # X
    [-0.227, 0.887, 0.057, -0.019, -0.106, -0.022, 0.041, 0.048],  # Y
    [0.022, 0.102, -0.229, -0.310, -0.246, -0.063, 0.055, 0.108],  # Z
])

# Dower matrix (Dower et al. 1980, "On deriving the electrocardiogram from vectorcardiographic
# leads", Clin Cardiol 3(2)): rows I, II, V1..V6; columns X, Y, Z.
DOWER = torch.tensor([
    [0.632, -0.235, 0.059],  # I
    [0.235, 1.066, -0.132],  # II
    [-0.515, 0.157, -0.917],  # V1
    [0.044, 0.164, -1.387],  # V2
    [0.882, 0.098, -1.277],  # V3
    [1.213, 0.127, -0.601],  # V4
    [1.125, 0.127, -0.086],  # V5
    [0.831, 0.076, 0.230],  # V6
])


def derive_limb_leads(x: torch.Tensor) -> torch.Tensor:
    """Recompute III, aVR, aVL, aVF from I and II, each into its own slot of ``(B, 12, L)``.

    III = II - I, aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2 (Einthoven / Goldberger).
    """
    lead_i, lead_ii = x[:, I], x[:, II]
    out = x.clone()
    out[:, III] = lead_ii - lead_i
    out[:, AVR] = -(lead_i + lead_ii) / 2
    out[:, AVL] = lead_i - lead_ii / 2
    out[:, AVF] = lead_ii - lead_i / 2
    return out


def rotation_matrices(angles: torch.Tensor) -> torch.Tensor:
    """``(B, 3)`` Euler angles (radians, about X, Y, Z) -> ``(B, 3, 3)`` rotations ``Rz @ Ry @ Rx``."""
    cx, cy, cz = torch.cos(angles).unbind(-1)
    sx, sy, sz = torch.sin(angles).unbind(-1)
    one, zero = torch.ones_like(cx), torch.zeros_like(cx)
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).view(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).view(-1, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).view(-1, 3, 3)
    return rz @ ry @ rx


def time_mask(x: torch.Tensor, fraction: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero one contiguous span of ``round(fraction * L)`` samples (all leads), at a random start per sample."""
    b, _, length = x.shape
    span = int(round(fraction * length))
    if span <= 0:
        return x
    start = (uniform((b,), 0.0, 1.0, generator, x.device) * (length - span + 1)).long().clamp(max=length - span)
    t = torch.arange(length, device=x.device)
    masked = (t >= start[:, None]) & (t < start[:, None] + span)  # (B, L)
    return x.masked_fill(masked[:, None, :], 0.0)


class VCGAugment:
    """Random VCG rotation + per-axis scaling (+ optional time mask), per sample, batched.

    Args:
        max_angle_deg: theta; each Euler angle ~ U(-theta, theta) degrees.
        scale_min, scale_max: per-axis VCG scale ~ U(scale_min, scale_max).
        mask_fraction: fraction of the signal zeroed in one contiguous span (0 = off).

    ``__call__(x (B, 12, L), generator=None) -> (B, 12, L)``, same dtype and device.
    The VCG is rotated, then scaled: ``v' = diag(s) R v``.
    """

    def __init__(self, max_angle_deg: float = 45.0, scale_min: float = 1.0, scale_max: float = 1.5,
                 mask_fraction: float = 0.0):
        assert 0.0 <= mask_fraction < 1.0, "mask_fraction must be in [0, 1)"
        self.max_angle = math.radians(max_angle_deg)
        self.scale_min, self.scale_max = scale_min, scale_max
        self.mask_fraction = mask_fraction

    @classmethod
    def from_config(cls, ssl, mask_fraction: float = 0.0) -> "VCGAugment":
        """From an :class:`xmodal.config.SSLConfig` (``vcg_max_angle_deg``, ``vcg_scale_min/max``)."""
        return cls(ssl.vcg_max_angle_deg, ssl.vcg_scale_min, ssl.vcg_scale_max, mask_fraction)

    def lead_maps(self, batch: int, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> torch.Tensor:
        """``(B, 8, 8)`` per-sample maps ``DOWER @ diag(s) R @ INVERSE_DOWER`` on the independent leads."""
        device = torch.device(device)
        angles = uniform((batch, 3), -self.max_angle, self.max_angle, generator, device)
        scales = uniform((batch, 3), self.scale_min, self.scale_max, generator, device)
        spatial = scales[:, :, None] * rotation_matrices(angles)  # (B, 3, 3)
        return DOWER.to(device) @ spatial @ INVERSE_DOWER.to(device)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x: ``(B, 12, L)`` -> augmented ``(B, 12, L)``."""
        assert x.ndim == 3 and x.shape[1] == 12, f"expected (B, 12, L), got {tuple(x.shape)}"
        idx = torch.tensor(INDEPENDENT, device=x.device)
        maps = self.lead_maps(x.shape[0], generator, x.device)  # (B, 8, 8)
        out = torch.zeros_like(x)
        out[:, idx] = torch.bmm(maps, x[:, idx].float()).to(x.dtype)
        return time_mask(derive_limb_leads(out), self.mask_fraction, generator)
