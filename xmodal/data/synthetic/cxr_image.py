"""Chest radiographs drawn from the latent state: frontal (PA/AP) and lateral views.

The image is an attenuation map (soft tissue adds, lung air subtracts, bone and fluid add) turned
into 12-bit MONOCHROME2 pixels (dense = bright). Anatomy: torso, shoulders and humeral heads,
clavicles, posterior ribs, spine, trachea, mediastinum with aortic knob, the heart, both lungs
with radiating vessels and parenchymal texture, hemidiaphragm domes with sharp costophrenic
angles, a gastric bubble, breast shadows; AP portables add ECG electrodes and wires.

Mimics (``latent.cxr_mimics``) add, without the finding: an epicardial fat pad widening the cardiac
silhouette at fat's density (cardiomegaly), a raised hemidiaphragm whose angle stays sharp (effusion).

Findings driven by the latent state (scaled by ``image_strength``):

- cardiomegaly: the heart's transverse diameter = cardiothoracic ratio (CTR) x thoracic width;
  CTR = 0.45 + 0.088 * heart (+8 % magnification on AP films).
- pleural effusion: fluid fills the lung base with a meniscus higher laterally, blunting the
  costophrenic angle and hiding the diaphragm (one or both sides).
- edema: perihilar "bat-wing" haze, diffuse lung density, prominent vessels and Kerley B lines.

Coordinates are in units of the image height: ``y`` runs 0 (top) -> 1, ``x`` is 0 at the centre,
positive toward the image right (the patient's left on a PA film).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

RENDER_MAX = 320  # anatomy is drawn at most this size, then resampled; noise is added at full size
FIELD_MM = 430.0  # detector height covered by the image (MIMIC: ~3056 rows x 0.139 mm)


@dataclass(frozen=True)
class CxrFindings:
    """What a study's latent state puts on the film."""

    ctr: float  # cardiothoracic ratio as a PA film would show it
    effusion_right: float  # fluid height as a fraction of lung height (0 = none)
    effusion_left: float
    edema: float  # 0 = none; ~1 = frank alveolar edema


@dataclass(frozen=True)
class Habitus:
    """The subject's body, shared by all of their films."""

    scale: float  # thorax size relative to the field
    female: bool
    ctr_offset: float  # individual variation of the CTR unrelated to disease
    fat_pad: float = 0.0  # cardiomegaly mimic: epicardial fat widening the silhouette (CTR units, fat density)
    raised_diaphragm: float = 0.0  # effusion mimic: one hemidiaphragm raised (fraction of lung height)
    raised_right: bool = True


def habitus(rng: np.random.Generator, female: bool, mimics: tuple[str, ...] = ()) -> Habitus:
    """A subject's body; ``mimics`` (see ``latent.cxr_mimics``) add a fat pad or a raised hemidiaphragm."""
    hab = Habitus(float(rng.normal(0.97 if female else 1.02, 0.04)), female, float(rng.normal(0, 0.012)))
    if "cardiomegaly" in mimics:
        hab = dataclasses.replace(hab, fat_pad=float(rng.uniform(0.05, 0.09)))
    if "pleural_effusion" in mimics:
        hab = dataclasses.replace(hab, raised_diaphragm=float(rng.uniform(0.08, 0.14)),
                                  raised_right=bool(rng.random() < 0.5))
    return hab


def findings(latent: np.ndarray, strength: float, hab: Habitus, rng: np.random.Generator) -> CxrFindings:
    """Map a visit latent (heart, fluid, effusion) to visible findings."""
    heart, fluid, eff = (float(v) for v in latent)
    ctr = float(np.clip(0.45 + hab.ctr_offset + 0.088 * strength * heart, 0.32, 0.72))
    height = strength * 0.256 * np.log1p(np.exp(2.5 * (eff - 0.7))) / 2.5
    both = eff > 1.3 or rng.random() < 0.4
    right_first = rng.random() < 0.6
    er = height * rng.uniform(0.7, 1.0) if (both or right_first) else 0.0
    el = height * rng.uniform(0.7, 1.0) if (both or not right_first) else 0.0
    edema = 1.6 * strength * float(np.log1p(np.exp(2.2 * (fluid - 0.6)))) / 2.2
    return CxrFindings(ctr, float(min(er, 0.45)), float(min(el, 0.45)), float(min(edema, 1.6)))


def _inside(d: np.ndarray, edge: float) -> np.ndarray:
    """Soft indicator of ``d > 0``: a linear ramp ``edge`` wide (image-height units)."""
    return np.clip(d * (1.0 / edge) + 0.5, 0.0, 1.0)


def _segment_band(x: np.ndarray, y: np.ndarray, p0: tuple[float, float], p1: tuple[float, float],
                  half: float, edge: float) -> np.ndarray:
    ax, ay, bx, by = *p0, *p1
    vx, vy = bx - ax, by - ay
    t = np.clip(((x - ax) * vx + (y - ay) * vy) / (vx * vx + vy * vy), 0, 1)
    return _inside(half - np.hypot(x - ax - t * vx, y - ay - t * vy), edge)


@functools.lru_cache(maxsize=8)
def _base_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    y = ((np.arange(h, dtype=np.float32) + 0.5) / h)[:, None] * np.ones((1, w), np.float32)
    x = ((np.arange(w, dtype=np.float32) + 0.5 - w / 2) / h)[None, :] * np.ones((h, 1), np.float32)
    return y, x


def _grid(h: int, w: int, rng: np.random.Generator, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Anatomy coordinates of each render pixel, with the film's pose (rotation, shift, zoom)."""
    y, x = _base_grid(h, w)
    a = rng.normal(0, 0.025)
    dx, dy = rng.normal(0, 0.012, 2)
    s = scale * rng.normal(1, 0.015)
    xr = (np.cos(a) * x - np.sin(a) * (y - 0.5)) / s + dx
    yr = (np.sin(a) * x + np.cos(a) * (y - 0.5)) / s + 0.5 + dy
    return xr.astype(np.float32), yr.astype(np.float32)


def _ridges(h: int, w: int, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Thin branching bright lines (lung markings): ridges of smoothed noise, in [0, 1]."""
    n = ndimage.gaussian_filter(rng.standard_normal((h, w), dtype=np.float32), sigma)
    return np.clip(1.0 - np.abs(n) / (0.35 * n.std() + 1e-6), 0, 1) ** 2


def _frontal(f: CxrFindings, ap: bool, h: int, w: int, rng: np.random.Generator, hab: Habitus) -> np.ndarray:
    x, y = _grid(h, w, rng, hab.scale)
    e = 1.5 / h  # antialiasing edge width
    ax = np.abs(x)
    insp = rng.normal(0, 0.012) + (0.045 if ap else 0.0)
    apex, half_w = 0.115 + 0.3 * insp, 0.165
    torso = _inside(0.12 + 0.35 * np.clip((y - 0.03) / 0.17, 0, 1) - ax, 3 * e)
    d = 0.55 * torso
    for s in (-1.0, 1.0):  # humeral heads
        d += 0.3 * _inside(0.05 - np.hypot(x - s * 0.43, y - 0.15), e)
    lungs = np.zeros_like(x)
    diaphragm = np.zeros_like(x)
    for s, eff in ((-1.0, f.effusion_right), (1.0, f.effusion_left)):
        xc, base = s * 0.172, 0.74 + insp - (0.02 if s < 0 else 0.0)
        if hab.raised_diaphragm and (s < 0) == hab.raised_right:  # effusion mimic: a higher, still sharp base
            base -= hab.raised_diaphragm * (base - apex)
        lat = np.clip(s * (x - xc) / half_w, -1, 1)  # -1 medial edge, +1 lateral edge
        round_top = np.sqrt(np.clip(1 - ((apex + 0.15 - y) / 0.15) ** 2, 0, 1))
        widen = 0.82 + 0.18 * np.clip((y - apex) / (base - apex), 0, 1)  # lungs are widest at the base
        hw = half_w * np.where(y < apex + 0.15, round_top, 1.0) * widen
        dome = base - 0.05 * (1 - lat**2)
        diaphragm += np.where(s * x >= 0, dome, 0.0)
        lung = _inside(hw - np.abs(x - xc), e) * _inside(dome - y, e) * _inside(y - apex, e)
        lung *= 0.8 + 0.2 * (1 - lat**2)  # less air behind the chest wall
        if eff > 0:
            top = dome - eff * (base - apex) * (0.55 + 0.45 * np.clip((lat + 1) / 2, 0, 1) ** 1.5)
            lung = lung * (1 - 0.85 * _inside(y - top, 0.025))
        lungs += lung
    markings = _ridges(h, w, rng, 0.01 * h)
    for hx, hy in ((-0.085, 0.435), (0.085, 0.415)):
        r = np.hypot(x - hx, y - hy)
        near = np.exp(-r / 0.14)
        d += lungs * (0.09 * markings * near * (1 + f.edema * (1.0 + (y < hy))) + 0.2 * f.edema * np.exp(-(r / 0.2) ** 2))
    d += lungs * 0.06 * f.edema
    kerley = (np.cos(2 * np.pi * y / 0.013) > 0.93) * _inside(ax - 0.25, 0.01) * _inside(y - 0.58, 0.01)
    d += 0.05 * f.edema * kerley * lungs
    d -= 0.5 * lungs
    # heart (borders widest just above the diaphragm), mediastinum, aortic knob, trachea, spine
    width = f.ctr * 2 * 0.172 * 2 * (1.08 if ap else 1.0)
    cx = 0.01 + rng.normal(0, 0.006)
    floor = 0.74 + insp - 0.045  # medial diaphragm level
    widest, top = floor - 0.045, floor - 0.28
    up = np.sqrt(np.clip(1 - ((widest - y) / (widest - top)) ** 2, 0, 1))
    shape = np.where(y < widest, up, 1 - 0.6 * ((y - widest) / 0.07) ** 2)
    heart = _inside(0.6 * width * shape - (x - cx), 0.012) * _inside((x - cx) + 0.4 * width * shape, 0.012)
    if hab.fat_pad:  # cardiomegaly mimic: a fat pad at the apex widens the silhouette, less dense than heart
        pad_w = width + hab.fat_pad * 2 * 0.172 * 2
        pad = _inside(0.6 * pad_w * shape - (x - cx), 0.02) * _inside(x - cx, 0.02) * _inside(y - widest + 0.09, 0.03)
        d += 0.2 * np.clip(pad - heart, 0, 1) * _inside(floor - y, 0.01)
    medi = _inside(0.058 + 0.012 * (y > 0.33) - np.abs(x - 0.004), 2 * e) * _inside(floor - y, 0.03)
    knob = _inside(0.03 - np.hypot(x - 0.052, y - 0.29), 2 * e)
    abdomen = torso * _inside(y - diaphragm, 2 * e)  # the heart sits on the diaphragm and merges with the abdomen
    d += 0.5 * np.maximum(np.maximum(heart, medi), np.maximum(knob, abdomen))
    d -= 0.1 * _inside(0.011 - np.abs(x - 0.004), e) * _inside(0.33 - y, 0.01)
    vert = 0.75 + 0.25 * np.cos(2 * np.pi * y / 0.04)
    d += 0.1 * _inside(0.032 - ax, e) * vert
    if rng.random() < 0.6:
        d -= 0.25 * _inside(1 - ((x - 0.15) / 0.05) ** 2 - ((y - 0.80 - insp) / 0.025) ** 2, 0.05)
    # ribs (one warped periodic pattern) and clavicles
    v = y - 0.8 * (ax - 0.1) ** 2
    phase = (v - apex + 0.03) / 0.056
    ribs = np.clip(np.cos(2 * np.pi * phase), 0, 1) ** 3 * _inside(phase + 0.2, 0.05) * _inside(10.2 - phase, 0.05)
    d += 0.08 * ribs * _inside(ax - 0.035, e) * _inside(0.37 - ax, 0.01)
    for s in (-1.0, 1.0):
        d += 0.22 * _segment_band(x, y, (s * 0.035, 0.16), (s * 0.31, 0.10), 0.011, e)
        if hab.female:
            d += 0.10 * _inside(0.12 - np.hypot((x - s * 0.19) / 1.3, y - 0.66), 0.02) * _inside(y - 0.5, 0.05)
    if rng.random() < 0.12:  # an unrelated patchy opacity
        px, py = rng.choice([-1, 1]) * rng.uniform(0.1, 0.28), rng.uniform(0.3, 0.65)
        d += 0.18 * lungs * np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * rng.uniform(0.02, 0.05) ** 2))
    if ap and rng.random() < 0.6:  # monitoring electrodes and a wire
        for _ in range(int(rng.integers(2, 5))):
            ex, ey = rng.uniform(-0.3, 0.3), rng.uniform(0.15, 0.7)
            d += 0.6 * _inside(0.011 - np.hypot(x - ex, y - ey), e)
        path = 0.3 + 0.1 * np.sin(x * rng.uniform(5, 12) + rng.uniform(0, 6.3))
        d += 0.35 * _inside(0.0025 - np.abs(y - path), e)
    return d


def _lateral(f: CxrFindings, h: int, w: int, rng: np.random.Generator, hab: Habitus) -> np.ndarray:
    """Left lateral view: anterior to the image left, spine posterior (image right)."""
    x, y = _grid(h, w, rng, hab.scale)
    e = 1.5 / h
    d = 0.75 * _inside(1 - (x / 0.36) ** 2 - ((y - 0.62) / 0.62) ** 4, 3 * e)
    base = 0.78 + rng.normal(0, 0.012)
    dome = base - 0.08 * (1 - (x / 0.3) ** 2) + 0.04 * x / 0.3
    lung = _inside(0.28 - np.abs(x - 0.02), e) * _inside(dome - y, e) * _inside(y - 0.12 - 0.5 * x**2, e)
    eff = max(f.effusion_left, f.effusion_right)
    if eff > 0:
        lung = lung - 0.85 * lung * _inside(y - (dome - 0.6 * eff * (0.3 + np.clip(x / 0.3, 0, 1))), 0.012)
    d += lung * (0.08 * f.edema + 0.02 * ndimage.gaussian_filter(rng.standard_normal((h, w), dtype=np.float32), 1.2))
    d -= 0.45 * lung
    size = f.ctr / 0.45
    heart = _inside(1 - ((x + 0.07) / (0.14 * size)) ** 2 - ((y - 0.6) / (0.14 * min(size, 1.2))) ** 2, 0.02)
    d += 0.4 * heart
    spine_x = 0.24 + 0.08 * (y - 0.5)
    blocks = 0.7 + 0.3 * (np.cos(2 * np.pi * y / 0.045) > -0.6)
    d += 0.3 * _inside(0.04 - np.abs(x - spine_x), e) * blocks
    d += 0.25 * _inside(0.007 - np.abs(x + 0.29 + 0.05 * (y - 0.4)), e) * _inside(0.6 - y, 0.02) * _inside(y - 0.2, 0.02)
    return d


def render_cxr(f: CxrFindings, view: str, shape: tuple[int, int], rng: np.random.Generator,
               hab: Habitus) -> np.ndarray:
    """One film ``uint16 [rows, cols]`` with 12-bit values; ``view`` is PA, AP, LATERAL or LL."""
    rows, cols = shape
    k = min(1.0, RENDER_MAX / max(rows, cols))
    h, w = max(32, round(rows * k)), max(32, round(cols * k))
    d = _lateral(f, h, w, rng, hab) if view in ("LATERAL", "LL") else _frontal(f, view == "AP", h, w, rng, hab)
    d = ndimage.gaussian_filter(d, 0.7)
    if (h, w) != (rows, cols):
        d = ndimage.zoom(d, (rows / h, cols / w), order=1, grid_mode=True, mode="nearest")
    exposure = rng.uniform(1.6, 2.1)
    p = 1.0 - np.exp(-exposure * np.clip(d, 0, None))
    p = p * 3700 + 150 + rng.standard_normal((rows, cols), dtype=np.float32) * (8 + 18 * np.sqrt(p))
    if view != "LATERAL" and rng.random() < 0.9:  # side marker: an "L" on the patient's left
        r0, c0, s = int(rows * 0.06), int(cols * 0.84), max(2, rows // 40)
        p[r0:r0 + 3 * s, c0:c0 + s // 2 + 1] = 4000
        p[r0 + 3 * s - s // 2 - 1:r0 + 3 * s, c0:c0 + 2 * s] = 4000
    return np.clip(np.round(p), 0, 4095).astype(np.uint16)
