"""12-lead ECGs from a vectorcardiographic dipole model, with the latent state's weak imprint.

Each beat is a sum of Gaussian waves (P, Q, R, S and an asymmetric T) in the three Frank axes
X (right -> left), Y (head -> feet), Z (front -> back). The heart vector is projected onto
I, II and V1–V6 with the Dower matrix (Dower et al. 1980), and III, aVR, aVL, aVF follow from
Einthoven's and Goldberger's equations, so the 12 leads are as consistent as real ones.

On top of the beat template: a per-person amplitude, electrical axis, QRS width and rate; sinus
rhythm with respiratory sinus arrhythmia and beat-to-beat jitter (or atrial fibrillation:
irregular RR, no P waves, 4–8 Hz f-waves); QT that shortens with rate; and the recording's
white noise, 60 Hz powerline interference and baseline wander.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
MIMIC_LEAD_ORDER = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")
# Dower transform, rows I, II, V1..V6; columns X, Y, Z (mV per mV of dipole).
DOWER = np.array([
    [0.632, -0.235, 0.059],
    [0.235, 1.066, -0.132],
    [-0.515, 0.157, -0.917],
    [0.044, 0.164, -1.387],
    [0.882, 0.098, -1.277],
    [1.213, 0.127, -0.601],
    [1.125, 0.127, -0.086],
    [0.831, 0.076, 0.230],
])
# Beat template: (centre relative to the R peak [s], width [s], dipole amplitude X, Y, Z [mV]).
WAVES = {
    "P": (-0.165, 0.022, (0.07, 0.11, -0.02)),
    "Q": (-0.026, 0.008, (-0.08, 0.02, -0.10)),
    "R": (0.0, 0.010, (1.10, 0.80, 0.55)),
    "S": (0.030, 0.011, (-0.25, -0.20, 0.35)),
    "T": (0.280, 0.055, (0.30, 0.20, -0.12)),  # width of the rising half; the falling half is 0.7x
}
QRS_WAVES = ("Q", "R", "S")


@dataclass(frozen=True)
class EcgParams:
    """Everything one 10-second recording depends on (besides the random stream)."""

    hr_bpm: float = 72.0
    af: bool = False
    qrs_gain: float = 1.0  # multiplies the Q, R, S amplitudes
    qrs_width: float = 1.0  # multiplies the Q, R, S widths and offsets
    t_gain: float = 1.0  # multiplies the T amplitude (negative inverts)
    frontal_deg: float = 0.0  # rotation of the heart vector in the frontal plane (+: toward right axis)
    horizontal_deg: float = 0.0  # rotation about the vertical axis (moves the precordial transition)
    pr_s: float = 0.165
    q_extra: tuple[float, float, float] = (0.0, 0.0, 0.0)  # infarct Q vector added to Q (mV)
    t_extra: tuple[float, float, float] = (0.0, 0.0, 0.0)  # ischaemic shift of the T vector (mV)
    noise_mv: float = 0.010
    powerline_mv: float = 0.010
    wander_mv: float = 0.08


def base_params(rng: np.random.Generator, *, male: bool, age: float) -> EcgParams:
    """A person's own ECG (between-person variation, independent of any label)."""
    return EcgParams(
        hr_bpm=float(np.clip(rng.normal(70 + 0.05 * (age - 60), 9), 48, 110)),
        qrs_gain=float(np.exp(rng.normal(0.08 if male else -0.08, 0.22))),
        qrs_width=float(np.exp(rng.normal(0.03 if male else -0.03, 0.07))),
        t_gain=float(np.exp(rng.normal(0.0, 0.2))),
        frontal_deg=float(rng.normal(0.0, 18.0) + 0.15 * (age - 60)),
        horizontal_deg=float(rng.normal(0.0, 12.0)),
        pr_s=float(np.clip(rng.normal(0.155 + 0.0006 * (age - 60), 0.018), 0.11, 0.24)),
    )


def recording_params(base: EcgParams, rng: np.random.Generator) -> EcgParams:
    """Visit-to-visit variation of one person and this recording's noise."""
    return replace(
        base,
        hr_bpm=float(np.clip(base.hr_bpm + rng.normal(0, 5), 40, 160)),
        qrs_gain=base.qrs_gain * float(np.exp(rng.normal(0, 0.05))),
        frontal_deg=base.frontal_deg + float(rng.normal(0, 3)),
        noise_mv=float(rng.uniform(0.005, 0.02)),
        powerline_mv=float(rng.uniform(0.0, 0.025) if rng.random() < 0.6 else 0.0),
        wander_mv=float(rng.uniform(0.02, 0.2)),
    )


def cxr_effects(p: EcgParams, latent: np.ndarray, strength: float) -> EcgParams:
    """Weak imprint of the CXR latents (heart, fluid, effusion) on a recording."""
    h, f, e = (float(v) * strength for v in latent)
    return replace(
        p,
        qrs_gain=p.qrs_gain * float(np.exp(0.12 * h - 0.10 * f - 0.14 * e)),
        frontal_deg=p.frontal_deg - 8.0 * h,
        qrs_width=p.qrs_width * float(np.exp(0.06 * h)),
        t_gain=p.t_gain * max(1.0 - 0.20 * max(h, 0.0), 0.2),
        hr_bpm=float(np.clip(p.hr_bpm + 10.0 * f, 40, 170)),
    )


def mimic_effects(p: EcgParams, mimics: tuple[str, ...]) -> EcgParams:
    """A mimic's own ECG (see :func:`~xmodal.data.synthetic.latent.cxr_mimics`): LV hypertrophy (QRS voltage
    up, axis left, as a heart 1 SD larger would show, but no wider QRS nor flatter T) for cardiomegaly; a
    large habitus's low QRS voltage for pleural effusion."""
    if "cardiomegaly" in mimics:
        p = replace(p, qrs_gain=p.qrs_gain * float(np.exp(0.12)), frontal_deg=p.frontal_deg - 8.0)
    if "pleural_effusion" in mimics:
        p = replace(p, qrs_gain=p.qrs_gain * float(np.exp(-0.14)))
    return p


# Initial (Q) forces point away from an infarct: anterior -> posterior, inferior -> up, lateral -> right.
_AWAY_FROM_SCAR = {"anterior": (0.0, 0.0, 1.0), "inferior": (0.0, -1.0, 0.0), "lateral": (-1.0, 0.0, 0.0)}


def cmr_effects(p: EcgParams, *, dilation: float, hf: float, af: bool, q_mv: float = 0.0,
                q_territory: str = "inferior", t_mv: float = 0.0, strength: float) -> EcgParams:
    """Imprint of the CMR latents; AF changes the rhythm whatever ``strength`` is.

    ``q_mv`` (Q-wave vector) and ``t_mv`` (T shift) point away from ``q_territory``; both are 0 in
    most hearts (see :class:`~xmodal.data.synthetic.latent.CmrState`).
    """
    d, h = dilation * strength, hf * strength
    away = np.array(_AWAY_FROM_SCAR[q_territory])
    return replace(
        p, af=af, qrs_gain=p.qrs_gain * float(np.exp(0.08 * d - 0.05 * h)),
        qrs_width=p.qrs_width * float(np.exp(0.04 * d)), t_gain=p.t_gain * (1.0 - 0.1 * max(h, 0.0)),
        hr_bpm=float(np.clip(p.hr_bpm + 1 * d + 3 * h, 40, 170)),
        q_extra=tuple(float(v) for v in strength * q_mv * away),
        t_extra=tuple(float(v) for v in strength * t_mv * away),
    )


def _rotation(frontal_deg: float, horizontal_deg: float) -> np.ndarray:
    a, b = np.deg2rad(frontal_deg), np.deg2rad(horizontal_deg)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    return ry @ rz


def _r_peaks(p: EcgParams, rng: np.random.Generator, t_start: float, t_end: float) -> tuple[np.ndarray, np.ndarray]:
    """R-peak times and the RR interval preceding each, from ``t_start`` to ``t_end`` (s)."""
    rr0 = 60.0 / p.hr_bpm
    resp_hz, resp_phase = rng.uniform(0.2, 0.33), rng.uniform(0, 2 * np.pi)
    t, times, rrs = t_start + rng.uniform(0, rr0), [], []
    while t < t_end:
        if p.af:
            rr = float(np.clip(rr0 * rng.gamma(16.0, 1 / 16.0) * rng.choice([0.8, 1.0, 1.3]), 0.33, 2.0))
        else:
            rr = rr0 * (1 + 0.035 * np.sin(2 * np.pi * resp_hz * t + resp_phase) + 0.015 * rng.standard_normal())
        times.append(t)
        rrs.append(rr)
        t += rr
    return np.array(times), np.array(rrs)


def simulate_ecg(p: EcgParams, rng: np.random.Generator, *, fs: int = 500, seconds: float = 10.0,
                 leads: tuple[str, ...] = LEADS) -> np.ndarray:
    """One recording, shape ``(len(leads), round(fs * seconds))``, in mV."""
    n = int(round(fs * seconds))
    t = np.arange(n) / fs
    r_times, rr = _r_peaks(p, rng, -1.2, seconds + 0.3)
    rot = _rotation(p.frontal_deg, p.horizontal_deg)
    xyz = np.zeros((3, n))
    beat_gain = 1.0 + 0.03 * rng.standard_normal(len(r_times)) + 0.05 * np.sin(2 * np.pi * 0.25 * r_times)
    for name, (centre, width, amp) in WAVES.items():
        a = np.asarray(amp, np.float64)
        if name == "P" and p.af:
            continue
        if name in QRS_WAVES:
            a = a * p.qrs_gain + (np.asarray(p.q_extra) if name == "Q" else 0.0)
            centre, width = centre * p.qrs_width, width * p.qrs_width
        if name == "P":
            centre = -p.pr_s
        vec = rot @ a
        if name == "T":
            vec = rot @ (a * p.t_gain) + np.asarray(p.t_extra)
            scale = np.clip(rr, 0.3, 2.0) ** (1 / 3)  # Fridericia: QT shortens with rate
            dt = t[None, :] - (r_times + centre * scale)[:, None]
            w = np.where(dt < 0, width, 0.7 * width) * scale[:, None]
        else:
            jitter = 0.002 * rng.standard_normal(len(r_times))
            dt = t[None, :] - (r_times + centre + jitter)[:, None]
            w = width
        g = (beat_gain[:, None] * np.exp(-0.5 * (dt / w) ** 2)).sum(axis=0)
        xyz += vec[:, None] * g[None, :]
    if p.af:
        for _ in range(3):
            f = rng.uniform(4.0, 8.0)
            xyz += (rng.normal(0, 0.03, 3) * np.array([0.6, 0.8, 1.2]))[:, None] * np.sin(
                2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))[None, :]
    eight = DOWER @ xyz  # I, II, V1..V6
    lead_i, lead_ii = eight[0], eight[1]
    limb = {"I": lead_i, "II": lead_ii, "III": lead_ii - lead_i, "aVR": -(lead_i + lead_ii) / 2,
            "aVL": lead_i - lead_ii / 2, "aVF": lead_ii - lead_i / 2}
    chest = {f"V{k + 1}": eight[2 + k] for k in range(6)}
    sig = np.stack([(limb | chest)[name] for name in leads])
    return sig + _noise(p, rng, t, len(leads))


def _noise(p: EcgParams, rng: np.random.Generator, t: np.ndarray, n_leads: int) -> np.ndarray:
    """White noise, 60 Hz powerline and baseline wander (respiration + electrode drift)."""
    noise = p.noise_mv * rng.standard_normal((n_leads, len(t)))
    pl = p.powerline_mv * rng.uniform(0.3, 1.0, n_leads)[:, None] * np.sin(2 * np.pi * 60.0 * t + rng.uniform(0, 6.3))
    resp = np.sin(2 * np.pi * rng.uniform(0.15, 0.35) * t + rng.uniform(0, 6.3))
    drift = np.sin(2 * np.pi * rng.uniform(0.03, 0.12, (n_leads, 1)) * t + rng.uniform(0, 6.3, (n_leads, 1)))
    wander = p.wander_mv * (rng.uniform(0.2, 1.0, (n_leads, 1)) * resp + rng.uniform(0.2, 1.0, (n_leads, 1)) * drift)
    return noise + pl + wander
