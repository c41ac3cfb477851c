"""Write synthetic recordings in the formats the real cohorts use: WFDB records and DICOM files.

- ECG: WFDB header + format-16 signal file, ADC gain 200 per mV, baseline 0, as in MIMIC-IV-ECG.
- CXR: one DICOM per film, 16-bit allocated / 12-bit stored MONOCHROME2, Explicit VR Little
  Endian, DX (PA) or CR (portable AP / lateral) with the view, spacing and study date/time tags.
- Cine CMR: one single-frame MR DICOM per phase with TriggerTime, InstanceNumber,
  CardiacNumberOfImages and a shared SeriesInstanceUID (files named by SOPInstanceUID, so
  their order on disk is not the temporal order, as in UK Biobank's zips).

UIDs are ``2.25.<n>`` UUID-derived UIDs hashed from the cohort seed and the object's identity, so
regenerating a cohort rewrites identical bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from pathlib import Path
from typing import Sequence

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian

ADC_GAIN = 200.0  # digital units per mV (MIMIC-IV-ECG)
DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image Storage
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"  # MR Image Storage
VIEW_CODES = {  # ViewPosition -> (code value, meaning) of SNOMED-RT view codes, as MIMIC-CXR stores them
    "PA": ("R-10214", "postero-anterior"), "AP": ("R-10206", "antero-posterior"),
    "LATERAL": ("R-10232", "lateral"), "LL": ("R-10236", "left lateral"),
}


ORIENTATION_CODES = {"Erect": "F-10440", "Recumbent": "F-10450"}  # PatientOrientationCodeSequence


def deterministic_uid(seed: int, *parts: object) -> str:
    """A valid ``2.25.<uuid>`` DICOM UID that depends only on the seed and ``parts``.

    (``pydicom.uid.generate_uid(prefix=None, ...)`` ignores its entropy and draws a random UUID.)
    """
    text = "\x1f".join(["xmodal-synthetic", str(seed), *map(str, parts)])
    return f"2.25.{uuid.UUID(bytes=hashlib.sha256(text.encode()).digest()[:16], version=4).int}"


def write_wfdb(directory: Path, record: str, signal_mv: np.ndarray, leads: Sequence[str], *, fs: int,
               when: dt.datetime) -> Path:
    """Write ``<directory>/<record>.hea`` + ``.dat`` (format 16); returns the header path.

    ``signal_mv`` is ``(n_leads, n_samples)`` in mV. The bytes are exactly what
    ``wfdb.wrsamp(record, fs, units=["mV"]*n, sig_name=leads, d_signal=..., fmt=["16"]*n,
    adc_gain=[200.0]*n, baseline=[0]*n, base_datetime=when)`` writes (a test checks this), at a
    fraction of its cost: ``wrsamp`` spends ~0.1 s per record validating its header fields.
    """
    if when.microsecond:
        raise ValueError("WFDB base times are written to the second")
    directory.mkdir(parents=True, exist_ok=True)
    digital = np.clip(np.round(np.asarray(signal_mv, np.float64).T * ADC_GAIN), -32767, 32767).astype("<i2")
    n_samples, n = digital.shape
    assert n == len(leads)
    checksums = (digital.astype(np.int64).sum(axis=0) % 65536).tolist()
    lines = [f"{record} {n} {fs} {n_samples} {when:%H:%M:%S} {when:%d/%m/%Y}"]
    lines += [f"{record}.dat 16 {ADC_GAIN!r}(0)/mV 16 0 {int(digital[0, k])} {checksums[k]} 0 {name}"
              for k, name in enumerate(leads)]
    (directory / f"{record}.dat").write_bytes(digital.tobytes())
    header = directory / f"{record}.hea"
    header.write_text("\n".join(lines) + "\n")
    return header


def _file_meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def _pixels(ds: Dataset, pixels: np.ndarray) -> None:
    assert pixels.dtype == np.uint16 and pixels.ndim == 2 and int(pixels.max(initial=0)) < 4096
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()


def _patient(ds: Dataset, patient_id: str) -> None:
    ds.PatientName = "___"  # de-identified, as in MIMIC-CXR
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""


def write_cxr(path: Path, pixels: np.ndarray, *, seed: int, subject_id: str, study_id: str, dicom_id: str,
              view: str, when: dt.datetime, spacing_mm: float, series_number: int, procedure: str,
              orientation: str) -> None:
    """One chest film as MIMIC-CXR stores it (``PatientID`` = subject id)."""
    portable = view != "PA" and procedure.endswith("(PORTABLE AP)")
    sop_class = CR_STORAGE if portable else DX_STORAGE
    sop_uid = deterministic_uid(seed, "cxr-sop", dicom_id)
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class, sop_uid)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    date, time = when.strftime("%Y%m%d"), when.strftime("%H%M%S.%f")[:10]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = time
    ds.AccessionNumber = ""
    ds.Modality = "CR" if portable else "DX"
    ds.Manufacturer = "Agfa" if portable else "GE Healthcare"
    ds.InstitutionName = ""
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = procedure
    ds.SeriesDescription = procedure
    ds.PerformedProcedureStepDescription = procedure
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = *VIEW_CODES[view][:1], "SRT", VIEW_CODES[view][1]
    ds.ViewCodeSequence = DicomSequence([code])
    posture = Dataset()
    posture.CodeValue, posture.CodingSchemeDesignator = ORIENTATION_CODES[orientation], "SRT"
    posture.CodeMeaning = orientation
    ds.PatientOrientationCodeSequence = DicomSequence([posture])
    _patient(ds, subject_id)
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = view
    ds.PatientOrientation = ["P", "F"] if view in ("LATERAL", "LL") else ["L", "F"]
    ds.StudyInstanceUID = deterministic_uid(seed, "cxr-study", study_id)
    ds.SeriesInstanceUID = deterministic_uid(seed, "cxr-series", study_id, series_number)
    ds.StudyID = study_id
    ds.SeriesNumber, ds.InstanceNumber = series_number, 1
    ds.PixelSpacing = ds.ImagerPixelSpacing = [f"{spacing_mm:.6f}", f"{spacing_mm:.6f}"]
    ds.WindowCenter, ds.WindowWidth = "2048", "4096"
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
    ds.PresentationLUTShape = "IDENTITY"
    _pixels(ds, pixels)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def write_cine(directory: Path, frames: np.ndarray, *, seed: int, eid: str, instance: int, when: dt.datetime,
               rr_ms: float, spacing_mm: float) -> list[Path]:
    """One short-axis cine series: a single-frame MR file per phase under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    n = len(frames)
    study_uid = deterministic_uid(seed, "cmr-study", eid, instance)
    series_uid = deterministic_uid(seed, "cmr-series", eid, instance)
    frame_uid = deterministic_uid(seed, "cmr-frame-of-reference", eid, instance)
    date, time = when.strftime("%Y%m%d"), when.strftime("%H%M%S.%f")[:10]
    rows, cols = frames.shape[1:]
    paths = []
    for k in range(n):
        sop_uid = deterministic_uid(seed, "cmr-sop", eid, instance, k)
        ds = Dataset()
        ds.file_meta = _file_meta(MR_STORAGE, sop_uid)
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"]
        ds.SOPClassUID, ds.SOPInstanceUID = MR_STORAGE, sop_uid
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = date
        ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = time
        ds.Modality = "MR"
        ds.Manufacturer, ds.ManufacturerModelName = "SIEMENS", "Aera"
        ds.MagneticFieldStrength = "1.5"
        ds.StudyDescription = "CardiacMRI"
        ds.SeriesDescription = ds.ProtocolName = "CINE_segmented_SAX_b6"
        _patient(ds, eid)
        ds.ScanningSequence, ds.SequenceVariant = "GR", ["SK", "SS"]
        ds.MRAcquisitionType = "2D"
        ds.SequenceName = "*tfi2d1_12"
        ds.SliceThickness, ds.RepetitionTime, ds.EchoTime, ds.FlipAngle = "8", "2.7", "1.1", "80"
        ds.TriggerTime = f"{k * rr_ms / n:.3f}"
        ds.NominalInterval = str(int(round(rr_ms)))
        ds.CardiacNumberOfImages = n
        ds.HeartRate = str(int(round(60000.0 / rr_ms)))
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.StudyID, ds.SeriesNumber, ds.AcquisitionNumber, ds.InstanceNumber = "1", 14, 1, k + 1
        ds.ImagePositionPatient = [f"{-spacing_mm * cols / 2:.4f}", f"{-spacing_mm * rows / 2:.4f}", "12.5000"]
        ds.ImageOrientationPatient = ["0.6", "-0.6", "-0.5", "0.7", "0.7", "0.0"]
        ds.SliceLocation = "12.5"
        ds.PixelSpacing = [f"{spacing_mm:.6f}", f"{spacing_mm:.6f}"]
        ds.WindowCenter, ds.WindowWidth = "600", "1400"
        _pixels(ds, frames[k])
        path = directory / f"{sop_uid}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
