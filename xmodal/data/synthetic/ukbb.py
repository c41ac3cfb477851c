"""The UK-Biobank-like synthetic cohort: a resting 12-lead ECG and a short-axis cine per visit.

Layout under the cohort root (UK Biobank bulk fields 20205 = ECG at rest, 20209 = short-axis
CMR; ``<eid>_<field>_<instance>_0`` as the bulk files are named, the zips unpacked to folders)::

    ukbb/pairs.csv                                  eid, ecg_path, cmr_path, ecg_time, cmr_time,
                                                    mi, cardiomyopathy, af, hf
    ukbb/ecg/1000394_20205_2_0.{hea,dat}            12-lead, 500 Hz, 10 s (WFDB)
    ukbb/cmr/1000394_20209_2_0/<SOPInstanceUID>.dcm 50 single-frame MR files, one cycle

Instance 2 is the first imaging visit (2014–2019); about 6 % of subjects also have a repeat
imaging visit (instance 3, two to three years later), so a subject can hold two pairs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from xmodal.data.synthetic import cmr_cine, ecg_signal, writers
from xmodal.data.synthetic.latent import CMR_LABELS, CmrState, Knobs, cmr_labels, cmr_states

UKBB_DIR = "ukbb"
PAIRS_CSV = "pairs.csv"
ECG_FS, ECG_SECONDS = 500, 10.0


@dataclass
class CmrVisit:
    instance: int
    ecg_time: dt.datetime
    cmr_time: dt.datetime


@dataclass
class CmrSubject:
    index: int
    eid: str
    male: bool
    state: CmrState
    labels: dict[str, float]
    ecg_base: ecg_signal.EcgParams
    visits: list[CmrVisit]


def plan_cmr(n: int, seed: int, knobs: Knobs) -> list[CmrSubject]:
    """Every subject, visit, time and label of a UK-Biobank-like cohort of ``n`` subjects."""
    rng = np.random.default_rng([seed, 21])
    eids = sorted(str(1_000_000 + int(v)) for v in rng.choice(5_000_000, n, replace=False))
    states = cmr_states(rng, n, knobs)
    labels = cmr_labels(states, rng, knobs)
    first_day = dt.datetime(2014, 4, 1)
    subjects = []
    for i, eid in enumerate(eids):
        male, age = bool(rng.random() < 0.48), float(rng.uniform(45, 80))
        visits = []
        when = first_day + dt.timedelta(days=float(rng.uniform(0, 2000)))
        for instance in (2, 3) if rng.random() < 0.06 else (2,):
            if instance == 3:
                when += dt.timedelta(days=float(rng.uniform(700, 1100)))
            cmr_time = when.replace(hour=int(rng.integers(8, 18)), minute=int(rng.integers(0, 60)),
                                    second=int(rng.integers(0, 60)), microsecond=0)
            visits.append(CmrVisit(instance, cmr_time - dt.timedelta(minutes=float(rng.uniform(20, 90))), cmr_time))
        visits = [CmrVisit(v.instance, v.ecg_time.replace(microsecond=0), v.cmr_time) for v in visits]
        subjects.append(CmrSubject(i, eid, male, states[i],
                                   {k: float(labels[k][i]) for k in CMR_LABELS},
                                   ecg_signal.base_params(rng, male=male, age=age), visits))
    return subjects


def _ecg_name(eid: str, instance: int) -> str:
    return f"{eid}_20205_{instance}_0"


def _cmr_name(eid: str, instance: int) -> str:
    return f"{eid}_20209_{instance}_0"


def render_cmr_subject(subj: CmrSubject, root: Path, seed: int, knobs: Knobs) -> None:
    """Draw and write the ECG and cine of every visit of one subject."""
    base = root / UKBB_DIR
    s = subj.state
    for v in subj.visits:
        rng = np.random.default_rng([seed, 3, subj.index, v.instance])
        p = ecg_signal.cmr_effects(ecg_signal.recording_params(subj.ecg_base, rng), dilation=s.dilation,
                                   hf=s.hf_score, af=s.af, q_mv=s.q_mv, q_territory=s.q_territory, t_mv=s.t_mv,
                                   strength=knobs.ecg_strength)
        sig = ecg_signal.simulate_ecg(p, rng, fs=ECG_FS, seconds=ECG_SECONDS)
        writers.write_wfdb(base / "ecg", _ecg_name(subj.eid, v.instance), sig, ecg_signal.LEADS, fs=ECG_FS,
                           when=v.ecg_time)
        rng = np.random.default_rng([seed, 4, subj.index, v.instance])
        geom = cmr_cine.geometry(s, knobs.image_strength, male=subj.male, rng=rng)
        frames = cmr_cine.render_cine(geom, knobs.cine_shape, knobs.cine_frames, rng)
        rr_ms = 60000.0 / float(np.clip(p.hr_bpm, 45, 120))
        writers.write_cine(base / "cmr" / _cmr_name(subj.eid, v.instance), frames, seed=seed, eid=subj.eid,
                           instance=v.instance, when=v.cmr_time, rr_ms=rr_ms,
                           spacing_mm=cmr_cine.FIELD_MM / max(knobs.cine_shape))


def write_cmr_table(subjects: list[CmrSubject], root: Path) -> dict[str, int]:
    """``ukbb/pairs.csv`` (paths relative to it); returns counts."""
    rows = [{"eid": int(s.eid), "ecg_path": f"ecg/{_ecg_name(s.eid, v.instance)}.hea",
             "cmr_path": f"cmr/{_cmr_name(s.eid, v.instance)}",
             "ecg_time": v.ecg_time.strftime("%Y-%m-%d %H:%M:%S"), "cmr_time": v.cmr_time.strftime("%Y-%m-%d %H:%M:%S"),
             **{k: int(s.labels[k]) for k in CMR_LABELS}} for s in subjects for v in s.visits]
    (root / UKBB_DIR).mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / UKBB_DIR / PAIRS_CSV, index=False)
    return {"subjects": len(subjects), "ecgs": len(rows), "studies": len(rows), "images": len(rows)}
