"""Fixtures of the reader tests: the shared real samples, and writers of small WFDB records and DICOMs."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest
import wfdb
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

REAL = Path(__file__).parents[2].parent / "shared/data/real"
LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]  # default channel names


@pytest.fixture(scope="session")
def cinc_dir() -> Path:
    """The 25 CinC 2021 records (``.hea`` + ``.mat``)."""
    d = REAL / "ecg/cinc2021"
    if not d.is_dir():
        pytest.skip(f"real ECG samples not found at {d} (they live next to the repo in shared/data/real)")
    return d


@pytest.fixture(scope="session")
def nih_cxr() -> Path:
    """The NIH ChestX-ray14 image 00000001_000 (cardiomegaly) as DICOM."""
    p = REAL / "dicom/cxr/nih_cxr14_00000001_000_cardiomegaly.dcm"
    if not p.is_file():
        pytest.skip(f"real CXR sample not found at {p} (it lives next to the repo in shared/data/real)")
    return p


def _ecg_like(fs: float, seconds: float = 10.0, n_leads: int = 12, seed: int = 0) -> np.ndarray:
    """``[n, n_leads]`` mV: a 1.2 Hz (72 bpm) QRS-like spike train plus a distinct sine per lead."""
    t = np.arange(round(fs * seconds)) / fs
    beats = np.arange(0.3, seconds, 1 / 1.2)
    qrs = sum(np.exp(-0.5 * ((t - b) / 0.012) ** 2) for b in beats)
    rng = np.random.default_rng(seed)
    cols = [(0.5 + 0.1 * i) * qrs + 0.2 * np.sin(2 * np.pi * (2 + i) * t) + 0.01 * rng.standard_normal(t.size)
            for i in range(n_leads)]
    return np.stack(cols, axis=1)


@pytest.fixture(scope="session")
def ecg_like() -> Callable[..., np.ndarray]:
    """``ecg_like(fs, seconds=10, n_leads=12, seed=0)`` -> ``[n, n_leads]`` mV synthetic ECG."""
    return _ecg_like


@pytest.fixture
def write_wfdb(tmp_path: Path) -> Callable[..., Path]:
    """``write_wfdb(name, signal [n, ch], fs, names, units="mV", gain=1000)`` -> path of the ``.hea``.

    ``signal`` is in ``units``; format 16 ``.dat`` as in MIMIC-IV-ECG; NaN becomes WFDB's invalid sample.
    """

    def write(name: str, signal: np.ndarray, fs: float, names: Sequence[str] | None = None,
              units: str | Sequence[str] = "mV", gain: float = 1000.0) -> Path:
        n_ch = signal.shape[1]
        names = list(names or LEADS[:n_ch])
        units = [units] * n_ch if isinstance(units, str) else list(units)
        wfdb.wrsamp(name, fs=fs, units=units, sig_name=names, p_signal=signal, fmt=["16"] * n_ch,
                    adc_gain=[gain] * n_ch, baseline=[0] * n_ch, write_dir=str(tmp_path))
        return tmp_path / f"{name}.hea"

    return write


@pytest.fixture
def make_dicom(tmp_path: Path) -> Callable[..., Path]:
    """``make_dicom(name, pixels, photometric="MONOCHROME2", bits_stored=12, **attrs)`` -> file path.

    ``pixels``: ``[rows, cols]`` or ``[frames, rows, cols]`` integer array (uint16 or int16).
    Extra keyword attributes are set on the dataset (e.g. ``WindowCenter=100``).
    """

    def make(name: str, pixels: np.ndarray, photometric: str = "MONOCHROME2", bits_stored: int = 12,
             **attrs: object) -> Path:
        pixels = np.asarray(pixels)
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # DX for presentation
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.Modality = "DX"
        ds.PatientName = "Doe^John"
        ds.PatientID = "PID-SECRET-42"
        ds.PatientBirthDate = "19700101"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        if pixels.ndim == 3:
            ds.NumberOfFrames = pixels.shape[0]
        ds.Rows, ds.Columns = pixels.shape[-2:]
        ds.BitsAllocated = 16
        ds.BitsStored = bits_stored
        ds.HighBit = bits_stored - 1
        ds.PixelRepresentation = int(pixels.dtype.kind == "i")
        ds.PixelData = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
        for key, value in attrs.items():
            setattr(ds, key, value)
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        return path

    return make
