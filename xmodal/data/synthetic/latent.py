"""The latent cardiac state shared by the ECG and the image of a synthetic subject.

Every synthetic label is drawn from a latent state, and both modalities are rendered from that
same state, so cross-modal learning has something real to find:

CXR cohorts (MIMIC-like), three standard-normal latents per visit, correlated within a subject
(corr heart–fluid 0.45, fluid–effusion 0.55, heart–effusion 0.35)::

    heart     cardiac size          -> cardiomegaly        image: cardiothoracic ratio (strong)
    fluid     pulmonary fluid load  -> edema               image: perihilar haze, vessels (strong)
    effusion  pleural fluid         -> pleural_effusion    image: blunted costophrenic angles (strong)

    ECG (weak, on top of large between-person variation): heart -> QRS voltage up, left axis,
    wider QRS, flatter T; fluid -> faster heart rate, lower voltage; effusion -> lower voltage.

``heart`` is a stable trait (visit drift 0.25); ``fluid`` and ``effusion`` are acute (drift 0.6).
A visit's latent is ``sqrt(1 - d^2) * subject + d * noise``, so each stays N(0, 1).

CMR cohorts (UK-Biobank-like), one visit::

    ischemia  u ~ N(0,1)            -> mi (scar of 50–120 deg in one coronary territory)
    dilation  d ~ N(0,1), corr(u, d) = 0.3 -> cardiomyopathy
    rhythm    AF ~ Bernoulli(prevalence) -> af
    EF = 0.62 - 0.05 d - 0.7 scar_fraction - 0.05 AF + N(0, 0.02)
    hf score = (0.58 - EF) / 0.06 + 0.3 d + N(0, 0.2), standardised -> hf

    image (clear): EDV ~ exp(0.3 d + 0.5 scar_fraction), ESV = EDV (1 - EF), an akinetic thin scar
    sector, no atrial kick in AF. The labels follow what the cine measures (CMR is the reference for
    volumes, EF and scar), with ``CMR_LINK_SLOPE`` steeper than the CXR link.
    ECG (partial): Q waves facing the scar in only Q_WAVE_FRACTION of MIs, amplitude lognormal, and
    positional Q waves in POSITIONAL_Q_FRACTION of hearts without one; T inversion in half the
    Q-wave MIs and a fifth of the others; dilation -> slightly wider QRS; hf -> faster rate, flatter
    T; all on top of the large between-person variation. AF = irregular RR, no P waves, f-waves
    (strong, as in real ECGs: AF is the one label the ECG shows better than the image).

Labels: ``P(y = 1) = sigmoid(a + b * z)``, with ``a`` solved so that the cohort prevalence matches
the knob and ``b`` per label (``CXR_LINK_SLOPE``: steep for cardiomegaly and effusion, shallow for
graded edema; ``CMR_LINK_SLOPE`` for CMR), then a fraction ``label_noise`` (+ ``EXTRA_LABEL_NOISE``:
edema) of labels flipped. Mimics (``cxr_mimics``) show part of a finding without having it.
Knob ``image_strength`` scales every latent effect on the image, ``ecg_strength`` every effect on
the ECG (AF rhythm excepted); 1.0 gives image AUROC well above ECG AUROC, as published
(CXR-only ~0.94 vs ECG-only ~0.70–0.78 for cardiomegaly).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from scipy.optimize import brentq

from xmodal.errors import ConfigError

CXR_LATENTS = ("heart", "fluid", "effusion")
CXR_LABEL_OF = {"cardiomegaly": "heart", "edema": "fluid", "pleural_effusion": "effusion"}
CXR_CORR = np.array([[1.0, 0.45, 0.35], [0.45, 1.0, 0.55], [0.35, 0.55, 1.0]])
CXR_DRIFT = np.array([0.25, 0.6, 0.6])  # visit-to-visit drift of each latent
CMR_LABELS = ("mi", "cardiomyopathy", "af", "hf")
TERRITORIES = ("anterior", "inferior", "lateral")  # LAD, RCA, LCx
DEFAULT_PREVALENCE = {"cardiomegaly": 0.30, "pleural_effusion": 0.25, "edema": 0.20,
                      "mi": 0.25, "cardiomyopathy": 0.25, "af": 0.20, "hf": 0.25}
LINK_SLOPE = 3.0  # logit per latent SD: the label is a sharp but noisy function of the latent
# CXR labels are read off the film (CheXpert on the report), so they follow what the film shows: sharply for
# a clear-cut finding (heart size, fluid in the costophrenic angle), loosely for graded edema.
CXR_LINK_SLOPE = {"cardiomegaly": 6.0, "pleural_effusion": 6.0, "edema": 2.5}
# Extra label flips on top of ``Knobs.label_noise``: readers disagree most on edema.
EXTRA_LABEL_NOISE = {"edema": 0.10}
# Share of all subjects who are mimics of a finding (without it): see ``cxr_mimics``.
DEFAULT_MIMIC_SHARE = {"cardiomegaly": 0.15, "pleural_effusion": 0.12}
CMR_LINK_SLOPE = 5.0  # CMR labels are read off the image (EF, volumes), so they follow the latent closer
SCAR_DEG = (50.0, 120.0)  # angular extent of an infarct scar
Q_WAVE_FRACTION = 0.4  # infarcts with pathological Q waves on the ECG (the rest are non-Q-wave MIs)
POSITIONAL_Q_FRACTION = 0.15  # hearts without an infarct with a positional (normal-variant) inferior Q wave
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(64)  # E[f(z)], z ~ N(0, 1)


@dataclass(frozen=True)
class Knobs:
    """Generation knobs of a synthetic cohort (JSON-able; part of the cache key)."""

    prevalence: Mapping[str, float] = field(default_factory=dict)  # label -> prevalence; missing: default
    image_strength: float = 1.0  # scales every latent effect on the image
    ecg_strength: float = 1.0  # scales every latent effect on the ECG (weak by design)
    label_noise: float = 0.03  # fraction of labels flipped at random (plus EXTRA_LABEL_NOISE per label)
    mimic_share: Mapping[str, float] = field(default_factory=dict)  # label -> share of mimics; missing: default
    uncertain_rate: float = 0.06  # CheXpert: labels reported uncertain (-1), mostly near the boundary
    blank_rate: float = 0.08  # CheXpert: labels not mentioned (blank)
    cxr_shape: tuple[int, int] = (512, 512)  # rows, columns of every CXR (MIMIC: about 3056 x 2544)
    cine_shape: tuple[int, int] = (192, 192)  # rows, columns of every cine frame (UK Biobank: 208 x 210)
    cine_frames: int = 50  # frames over one cardiac cycle (UK Biobank: 50)

    def prevalence_of(self, label: str) -> float:
        return float(self.prevalence.get(label, DEFAULT_PREVALENCE[label]))

    def mimic_share_of(self, label: str) -> float:
        return float(self.mimic_share.get(label, DEFAULT_MIMIC_SHARE.get(label, 0.0)))

    def label_noise_of(self, label: str) -> float:
        return self.label_noise + EXTRA_LABEL_NOISE.get(label, 0.0)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["prevalence"] = dict(sorted(self.prevalence.items()))
        d["mimic_share"] = dict(sorted(self.mimic_share.items()))
        d["cxr_shape"], d["cine_shape"] = list(self.cxr_shape), list(self.cine_shape)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Knobs":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown synthetic knob(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
        d = dict(data)
        for k in ("cxr_shape", "cine_shape"):
            if k in d:
                d[k] = tuple(int(v) for v in d[k])
        return cls(**d).validated()

    def validated(self) -> "Knobs":
        bad = [k for k in self.prevalence if k not in DEFAULT_PREVALENCE]
        if bad:
            raise ConfigError(f"prevalence for unknown label(s) {', '.join(bad)}; valid: {', '.join(DEFAULT_PREVALENCE)}")
        for k, v in self.prevalence.items():
            if not 0.0 < v < 1.0:
                raise ConfigError(f"prevalence of {k} = {v} must be in (0, 1)")
        bad = [k for k in self.mimic_share if k not in DEFAULT_MIMIC_SHARE]
        if bad:
            raise ConfigError(f"mimic_share for unknown label(s) {', '.join(bad)}; valid: {', '.join(DEFAULT_MIMIC_SHARE)}")
        for k, v in self.mimic_share.items():
            if not 0.0 <= v < 1.0 - self.prevalence_of(k):
                raise ConfigError(f"mimic_share of {k} = {v} must be in [0, 1 - prevalence)")
        for k in ("label_noise", "uncertain_rate", "blank_rate"):
            if not 0.0 <= getattr(self, k) < 0.5:
                raise ConfigError(f"{k} = {getattr(self, k)} must be in [0, 0.5)")
        for k in ("image_strength", "ecg_strength"):
            if getattr(self, k) < 0:
                raise ConfigError(f"{k} = {getattr(self, k)} must be >= 0")
        for k in ("cxr_shape", "cine_shape"):
            shape = getattr(self, k)
            if len(shape) != 2 or min(shape) < 32 or max(shape) > 4096:
                raise ConfigError(f"{k} = {shape} must be two sizes in [32, 4096]")
        if not 8 <= self.cine_frames <= 200:
            raise ConfigError(f"cine_frames = {self.cine_frames} must be in [8, 200]")
        return self


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def intercept_for(prevalence: float, slope: float = LINK_SLOPE, *, scale: float = 1.0) -> float:
    """``a`` such that ``E[sigmoid(a + slope * scale * z)] = prevalence`` for ``z ~ N(0, 1)``."""
    w = _GH_W / _GH_W.sum()
    return float(brentq(lambda a: float(np.sum(w * sigmoid(a + slope * scale * _GH_X))) - prevalence, -40, 40))


def cxr_subject_latents(rng: np.random.Generator, n: int) -> np.ndarray:
    """Subject baselines ``[n, 3]`` (heart, fluid, effusion), each N(0, 1), correlated."""
    return rng.multivariate_normal(np.zeros(3), CXR_CORR, size=n)


def cxr_visit_latent(baseline: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One visit's latent ``[3]``: the baseline drifted (acute latents more than heart size)."""
    eps = rng.multivariate_normal(np.zeros(3), CXR_CORR)
    return np.sqrt(1.0 - CXR_DRIFT**2) * baseline + CXR_DRIFT * eps


def cxr_mimics(base: np.ndarray, rng: np.random.Generator, knobs: Knobs) -> dict[str, np.ndarray]:
    """Mimic flags ``{label: bool [n]}`` of subjects with baselines ``base [n, 3]``.

    A mimic shows part of a finding's pattern on both the film and the ECG without having it: a hard
    negative. Cardiomegaly: an epicardial fat pad widens the cardiac silhouette (at fat's lower density)
    and hypertensive LV hypertrophy raises QRS voltage and shifts the axis left, with no QRS widening or
    T flattening. Pleural effusion: a raised hemidiaphragm lifts one lung base (the costophrenic angle
    stays sharp) and a large body habitus lowers QRS voltage. Mimics are drawn among the subjects whose
    baseline latent is below the label's prevalence threshold (negatives at baseline), so that
    ``mimic_share_of(label)`` of all subjects are mimics.
    """
    if not len(base):
        return {label: np.zeros(0, bool) for label in DEFAULT_MIMIC_SHARE}
    out = {}
    for label in DEFAULT_MIMIC_SHARE:
        z = base[:, CXR_LATENTS.index(CXR_LABEL_OF[label])]
        negative = z < np.quantile(z, 1.0 - knobs.prevalence_of(label))
        p = knobs.mimic_share_of(label) / max(negative.mean(), 1e-9)
        out[label] = negative & (rng.random(len(z)) < min(p, 1.0))
    return out


def draw_label(p: np.ndarray | float, rng: np.random.Generator, label_noise: float) -> np.ndarray:
    """Bernoulli(p), then each label flipped with probability ``label_noise``."""
    p = np.atleast_1d(np.asarray(p, np.float64))
    y = (rng.random(p.shape) < p).astype(np.float64)
    flip = rng.random(p.shape) < label_noise
    return np.where(flip, 1.0 - y, y)


@dataclass(frozen=True)
class CmrState:
    """The latent state of one UK-Biobank-like subject at the imaging visit, and how its ECG shows it."""

    ischemia: float
    dilation: float
    mi: bool  # true infarct (before label noise)
    scar_deg: float  # angular extent of the scar (0 without MI)
    territory: str  # coronary territory of the scar: anterior | inferior | lateral
    af: bool
    ef: float  # ejection fraction
    hf_score: float  # standardised heart-failure severity
    q_mv: float  # ECG: amplitude of the extra Q-wave vector (0: none), an infarct's or a positional one
    q_territory: str  # ECG: the territory the Q vector points away from
    t_mv: float  # ECG: ischaemic shift of the T vector away from the scar (0: none)


def cmr_states(rng: np.random.Generator, n: int, knobs: Knobs) -> list[CmrState]:
    """Latent states of ``n`` subjects (vectorised draw, then one dataclass per subject)."""
    u = rng.standard_normal(n)
    d = 0.3 * u + np.sqrt(1 - 0.09) * rng.standard_normal(n)
    mi = rng.random(n) < sigmoid(intercept_for(knobs.prevalence_of("mi"), CMR_LINK_SLOPE) + CMR_LINK_SLOPE * u)
    scar = np.where(mi, rng.uniform(*SCAR_DEG, n), 0.0)
    territory = rng.choice(np.array(TERRITORIES), size=n, p=[0.5, 0.3, 0.2])
    af = rng.random(n) < knobs.prevalence_of("af")
    ef = np.clip(0.62 - 0.05 * d - 0.7 * scar / 360.0 - 0.05 * af + 0.02 * rng.standard_normal(n), 0.15, 0.75)
    hf = (0.58 - ef) / 0.06 + 0.3 * d + 0.2 * rng.standard_normal(n)
    hf = (hf - hf.mean()) / hf.std() if n > 1 else hf / 1.3  # standardised over the cohort
    # The ECG's view: Q waves in only some infarcts (amplitude lognormal), positional Q waves in some
    # hearts without one, T inversion in half the Q-wave and a fifth of the other infarcts.
    q_mi = mi & (rng.random(n) < Q_WAVE_FRACTION)
    q_pos = ~mi & (rng.random(n) < POSITIONAL_Q_FRACTION)
    q_size, t_size = np.exp(0.6 * rng.standard_normal(n)), np.exp(0.5 * rng.standard_normal(n))
    q_mv = np.where(q_mi, 0.18 * q_size, np.where(q_pos, 0.10 * q_size, 0.0))
    q_territory = np.where(q_pos, "inferior", territory)
    t_mv = np.where(mi & (rng.random(n) < np.where(q_mi, 0.5, 0.2)), 0.08 * t_size, 0.0)
    return [CmrState(float(u[i]), float(d[i]), bool(mi[i]), float(scar[i]), str(territory[i]), bool(af[i]),
                     float(ef[i]), float(hf[i]), float(q_mv[i]), str(q_territory[i]), float(t_mv[i]))
            for i in range(n)]


def cmr_labels(states: list[CmrState], rng: np.random.Generator, knobs: Knobs) -> dict[str, np.ndarray]:
    """Labels ``mi, cardiomyopathy, af, hf`` (0/1 floats) of the CMR subjects, label noise applied."""
    d = np.array([s.dilation for s in states])
    hf = np.array([s.hf_score for s in states])
    k = CMR_LINK_SLOPE
    p_cm = sigmoid(intercept_for(knobs.prevalence_of("cardiomyopathy"), k) + k * d)
    p_hf = sigmoid(intercept_for(knobs.prevalence_of("hf"), k) + k * hf)
    return {"mi": draw_label(np.array([float(s.mi) for s in states]), rng, knobs.label_noise),
            "cardiomyopathy": draw_label(p_cm, rng, knobs.label_noise),
            "af": draw_label(np.array([float(s.af) for s in states]), rng, knobs.label_noise),
            "hf": draw_label(p_hf, rng, knobs.label_noise)}
