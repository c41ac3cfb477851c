"""Short-axis cine CMR (bright-blood SSFP) of one cardiac cycle, drawn from the latent state.

A mid-ventricular short-axis slice: body with subcutaneous fat, lungs, descending aorta, the
right ventricle's crescent and the left ventricle — blood pool, papillary muscles and a
myocardial ring of constant area (so the wall thickens as the cavity shrinks). The LV cavity
area follows the volume curve: end-diastole (ED) at frame 0, end-systole (ES) at 35 % of the
cycle, rapid filling, diastasis, atrial kick. Latent imprint (scaled by ``image_strength``):

- dilation -> larger end-diastolic volume (x exp(0.3 d)), thinner wall;
- ejection fraction (scar, dilation, AF) -> smaller stroke volume;
- infarct -> a thin, akinetic sector of the wall (50–120 deg) in its coronary territory, and a
  larger ventricle (post-infarct remodelling, x exp(0.5 scar fraction));
- AF -> no atrial kick (the late-diastolic filling moves to rapid filling and diastasis).

At the demo's 48 px (7.9 mm pixels) the LV cavity is about 6 px across: small, but its area
over the cycle carries EDV, EF and the scar's asymmetric contraction (scripts/synthetic_separability.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from xmodal.data.synthetic.latent import CmrState

FIELD_MM = 380.0  # field of view along the longer image side (UK Biobank: ~208 px x 1.8 mm)
ES_PHASE = 0.35
SLICE_LENGTH_MM = 80.0
SCAR_ANGLE = {"anterior": 270.0, "inferior": 90.0, "lateral": 0.0}  # image angles of the territories
ATRIAL_FRACTION = 0.15  # share of the stroke volume filled by the atrial kick in sinus rhythm


def volume_curve(phase: np.ndarray, edv: float, esv: float, es_phase: float = ES_PHASE,
                 atrial: float = ATRIAL_FRACTION) -> np.ndarray:
    """LV volume over the cycle (same units as ``edv``); ``phase`` in [0, 1), ED at 0, ES at ``es_phase``.

    ``atrial`` is the share of the stroke volume filled by the atrial kick (0 in AF: the rapid
    filling and diastasis fill it all).
    """
    p = np.mod(np.asarray(phase, np.float64), 1.0)
    sv = edv - esv
    rapid = 0.8 + (ATRIAL_FRACTION - atrial) * 2 / 3  # share filled early; diastasis fills the rest
    rapid_end, kick = es_phase + 0.25, 0.85
    v = np.empty_like(p)
    s = p < es_phase
    v[s] = edv - sv * (1 - np.cos(np.pi * p[s] / es_phase)) / 2
    s = (p >= es_phase) & (p < rapid_end)
    v[s] = esv + rapid * sv * (1 - np.cos(np.pi * (p[s] - es_phase) / 0.25)) / 2
    s = (p >= rapid_end) & (p < kick)
    v[s] = esv + rapid * sv + (1 - atrial - rapid) * sv * (p[s] - rapid_end) / (kick - rapid_end)
    s = p >= kick
    v[s] = esv + (1 - atrial) * sv + atrial * sv * (1 - np.cos(np.pi * (p[s] - kick) / (1 - kick))) / 2
    return v


@dataclass(frozen=True)
class CineGeometry:
    """What one subject's cine shows (after ``image_strength``)."""

    edv_ml: float
    esv_ml: float
    wall_mm: float  # end-diastolic wall thickness outside the scar
    scar_deg: float
    scar_center_deg: float  # image angle (0 = image right, 90 = down): anterior is up, lateral to the right
    rv_edv_scale: float
    atrial: float  # share of the stroke volume filled by the atrial kick (0 in AF)


def geometry(state: CmrState, strength: float, *, male: bool, rng: np.random.Generator) -> CineGeometry:
    s = strength
    remodel = 0.3 * state.dilation + 0.5 * state.scar_deg / 360.0  # log EDV: dilation, post-infarct remodelling
    edv = (155.0 if male else 125.0) * float(np.exp(s * remodel + rng.normal(0, 0.05)))
    ef = float(np.clip(0.62 + s * (state.ef - 0.62), 0.12, 0.8))
    wall = (9.5 if male else 8.0) * (1 - 0.08 * s * max(state.dilation, 0.0)) * rng.normal(1, 0.05)
    atrial = ATRIAL_FRACTION * (1 - min(s, 1.0)) if state.af else ATRIAL_FRACTION
    return CineGeometry(edv, edv * (1 - ef), float(wall), state.scar_deg * min(s, 1.0),
                        SCAR_ANGLE[state.territory], float(rng.normal(1.0, 0.08)), atrial)


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, a: float, b: float, edge: float) -> np.ndarray:
    r = np.hypot((x - cx) / a, (y - cy) / b)
    return np.clip((1 - r) * min(a, b) / edge + 0.5, 0, 1)


def render_cine(g: CineGeometry, shape: tuple[int, int], frames: int, rng: np.random.Generator) -> np.ndarray:
    """The cine ``uint16 [frames, rows, cols]`` (12-bit values), frame 0 at end-diastole."""
    rows, cols = shape
    sp = FIELD_MM / max(rows, cols)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    x, y = (xx - cols / 2 + 0.5) * sp, (yy - rows / 2 + 0.5) * sp  # mm; x to image right, y down
    e = 1.2 * sp
    ox, oy = rng.normal(0, 6, 2)  # where the heart sits in the field
    body = _ellipse(x, y, ox * 0.3, 15 + oy * 0.3, 165, 118, e)
    inner = _ellipse(x, y, ox * 0.3, 15 + oy * 0.3, 150, 104, e)
    img = 1100 * body - 720 * inner  # subcutaneous fat ring, soft tissue ~380 inside
    lungs = _ellipse(x, y, 98 + ox, 22 + oy, 52, 74, e) + _ellipse(x, y, -100 + ox, 12 + oy, 50, 78, e)
    img = img - 340 * np.clip(lungs, 0, 1) * inner
    img += 520 * _ellipse(x, y, 22 + ox, 60 + oy, 11, 11, e)  # descending aorta

    phase = np.arange(frames) / frames
    vol = volume_curve(phase, g.edv_ml, g.esv_ml, atrial=g.atrial) * 1000.0  # mm^3
    r_cav = np.sqrt(vol / SLICE_LENGTH_MM / np.pi)
    r_ed = float(r_cav[0])
    epi_ed = r_ed + g.wall_mm
    myo_area = np.pi * (epi_ed**2 - r_ed**2)
    rv_scale = np.sqrt(volume_curve(phase, 1.0, 0.45) * g.rv_edv_scale)
    cx, cy = 25 + ox, -6 + oy
    # every frame changes only a box around the ventricles: draw there
    half = 2.9 * epi_ed
    r0, r1 = (np.clip(np.array([cy - half, cy + half]) / sp + rows / 2, 0, rows)).astype(int)
    c0, c1 = (np.clip(np.array([cx - 1.25 * half, cx + 0.8 * half]) / sp + cols / 2, 0, cols)).astype(int)
    bx, by = x[r0:r1, c0:c1], y[r0:r1, c0:c1]
    r, th = np.hypot(bx - cx, by - cy), np.degrees(np.arctan2(by - cy, bx - cx))
    dth = (th - g.scar_center_deg + 180.0) % 360.0 - 180.0
    scar = np.clip((g.scar_deg / 2 - np.abs(dth)) / 12.0 + 0.5, 0, 1) if g.scar_deg > 0 else 0.0
    base = img[r0:r1, c0:c1]
    out = np.repeat(img[None], frames, axis=0)
    for k in range(frames):
        endo = r_cav[k] + scar * (r_ed - r_cav[k])  # the scar does not contract
        epi = (1 - scar) * np.sqrt(myo_area / np.pi + r_cav[k] ** 2) + scar * (endo + 0.45 * g.wall_mm)
        rv = _ellipse(bx, by, cx - 1.0 * epi_ed, cy - 0.3 * epi_ed, 1.3 * epi_ed * rv_scale[k],
                      1.45 * epi_ed * rv_scale[k], e)
        f = base + (600 - base) * np.clip((epi + 4.0 - r) / e + 0.5, 0, 1) * 0.35  # epicardial fat
        f += (980 - f) * rv * np.clip((r - epi - 3.0) / e + 0.5, 0, 1)  # RV blood beyond the septum
        f += (260 - f) * np.clip((epi - r) / e + 0.5, 0, 1)  # myocardium
        blood = np.clip((endo - r) / e + 0.5, 0, 1)
        for ang in (150.0, 40.0):  # papillary muscles, close to the wall
            a = np.radians(ang)
            blood = blood * (1 - _ellipse(bx, by, cx + 0.75 * r_cav[k] * np.cos(a), cy + 0.75 * r_cav[k] * np.sin(a),
                                          3.0, 3.0, e))
        out[k, r0:r1, c0:c1] = f + (1000 - f) * blood
    out = ndimage.gaussian_filter(out, (0, 0.7, 0.7))
    noise = rng.standard_normal((2, frames, rows, cols), dtype=np.float32) * 18.0
    out = np.sqrt((out + noise[0]) ** 2 + noise[1] ** 2)  # magnitude image: Rician noise
    return np.clip(np.round(out * rng.uniform(0.9, 1.15)), 0, 4095).astype(np.uint16)
