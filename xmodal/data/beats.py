"""R-peak detection on a preprocessed 12-lead ECG (PTACL pools ECG tokens between beats).

``wfdb.processing.xqrs_detect`` on one lead (II by default). XQRS's filters and its
moving-window integration are designed for rates of a few hundred Hz: on a 100 Hz signal it
locks on T waves (it found 19 "beats" in a 9-beat sinus-bradycardia record of the CinC samples).
A signal below 250 Hz is therefore first upsampled to 250 Hz (``resample_poly``; the 5-20 Hz
QRS band is intact at 100 Hz, only the sample grid is too coarse), and the detections are mapped
back to input samples. On the 25 CinC samples this matches XQRS on the native 500 Hz signal, at
~10-50 ms per record (GQRS was slower and over-counted at 100 Hz).

Detection never raises: a flat, all-NaN or too-short lead gives an empty array, and wfdb's
prints and warnings are silenced.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from fractions import Fraction

import numpy as np
from scipy import signal as sps
from wfdb import processing

_WORK_FS = 250.0  # XQRS runs at no less than this rate


def detect_rpeaks(signal: np.ndarray, fs: float, *, lead: int = 1) -> np.ndarray:
    """QRS locations of one lead of a 12-lead ECG.

    Args:
        signal: ``[12, n]`` (any scale; typically the z-scored output of ``read_ecg``).
        fs: its sampling rate in Hz.
        lead: row to detect on (default 1, lead II).

    Returns:
        int64 ``[n_beats]`` sorted, unique sample indices into ``signal`` (empty if none found).
    """
    x = np.asarray(signal, dtype=np.float64)
    x = x[lead] if x.ndim == 2 else x
    if x.size < fs or not np.all(np.isfinite(x)) or np.ptp(x) == 0:
        return np.zeros(0, np.int64)

    ratio = Fraction(max(1.0, _WORK_FS / fs)).limit_denominator(100)
    work = sps.resample_poly(x, ratio.numerator, ratio.denominator) if ratio != 1 else x
    work_fs = fs * ratio.numerator / ratio.denominator
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peaks = np.asarray(processing.xqrs_detect(work, work_fs, verbose=False), dtype=np.float64)
    except Exception:  # noqa: BLE001 - a detector failure means "no beats", never a crashed worker
        return np.zeros(0, np.int64)
    idx = np.round(peaks * fs / work_fs).astype(np.int64)
    return np.unique(np.clip(idx, 0, x.size - 1))
