"""DICOM readers: a chest X-ray -> ``[size, size]``, a cine MRI -> ``[frames, size, size]``, in [0, 1].

Display (the way a viewer shows it, bone bright):
    stored values -> modality LUT (Rescale Slope/Intercept or Modality LUT Sequence,
    ``pydicom.pixels.apply_rescale``) -> VOI (VOI LUT Sequence, else Window Center/Width with its
    VOI LUT Function, ``apply_voi`` / ``apply_windowing``; the first of several windows) ->
    scaled to [0, 1] by the VOI output range, or by the image's min-max when there is no VOI ->
    inverted for MONOCHROME1.
    For integer pixel data both LUT steps are evaluated once per possible stored value (at most
    65,536 of them) and the image is mapped by one gather into float32, so a 16-bit 3000x2500
    image never gets a float64 copy. A JPEG 2000 CXR much larger than ``size`` is decoded at a
    reduced resolution (its wavelet low-pass levels only), 40x faster than a full decode.

Geometry:
    ``fit="pad"`` keeps the aspect ratio (long side -> ``size``) and centres the image on a black
    (0) square; ``fit="crop"`` centre-crops the largest square. Resizing is antialiased and
    separable: a block mean by the integer part of the reduction factor, then a triangle
    (bilinear) filter whose support widens with any remaining reduction (like PIL's BILINEAR);
    upsampling is plain bilinear.

Cine:
    One multi-frame file (frames in stored order, equally spaced) or a folder of single-frame
    files of one series, ordered by TriggerTime, then InstanceNumber. The frames are taken to
    cover one cardiac cycle and are resampled to ``frames`` time points by periodic linear
    interpolation (the last frame blends back into the first). Each file's own rescale is
    applied, then one VOI (that of the first frame) or one min-max scales the whole series.

Native geometry:
    :func:`native_geometry` reads a record's frames, rows and columns from its DICOM header(s)
    without decoding pixels (a cine folder's frame count is its number of files), so a cohort's
    own size can cap the configured one before anything is decoded (``xmodal.data.geometry``).

Privacy: error messages name the file and the reason only; :func:`dicom_summary` returns
technical attributes only. Neither ever reads patient attributes.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path
from typing import Callable, NamedTuple, TypeVar

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_rescale, apply_voi, apply_windowing, get_decoder
from pydicom.uid import JPEG2000, JPEG2000Lossless

from xmodal.errors import ConfigError, RecordError, XmodalError

try:  # optional: reduced-resolution JPEG 2000 decoding (Pillow comes with matplotlib)
    from PIL import Image
except ImportError:  # pragma: no cover
    Image = None

_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_LUT_MAX = 1 << 17  # integer data with a wider value range is mapped directly
_SKIP_FILES = {"DICOMDIR"}
_F = TypeVar("_F", bound=Callable)

# Which pip packages decode a transfer syntax family (pydicom decodes native and RLE itself).
_INSTALL_HINT = {
    "JPEG 2000": "pip install pylibjpeg pylibjpeg-openjpeg",
    "JPEG-LS": "pip install pylibjpeg pylibjpeg-libjpeg",
    "JPEG": "pip install pylibjpeg pylibjpeg-libjpeg",
    "RLE": "pip install pylibjpeg pylibjpeg-rle",
}

# ---------------------------------------------------------------------------------------------
# Reading and decoding
# ---------------------------------------------------------------------------------------------


def _record_errors(fn: _F) -> _F:
    """Public readers raise only xmodal errors: anything else a malformed file provokes (an
    attribute pydicom cannot convert, an inconsistent LUT...) becomes a RecordError naming the file."""

    @functools.wraps(fn)
    def wrapper(path, *args, **kwargs):
        try:
            return fn(path, *args, **kwargs)
        except XmodalError:
            raise
        except Exception as e:  # noqa: BLE001 - only technical attributes are ever read
            raise RecordError(path, f"unusable DICOM ({type(e).__name__}: {_short(e)})") from None

    return wrapper  # type: ignore[return-value]


def _read(path: str | Path, *, pixels: bool = True) -> Dataset:
    """``dcmread`` with every failure turned into a :class:`RecordError` (no attribute values)."""
    if not Path(path).is_file():
        raise RecordError(path, "file not found")
    try:
        return pydicom.dcmread(path, stop_before_pixels=not pixels)
    except InvalidDicomError:
        raise RecordError(path, "not a DICOM file (no 'DICM' marker after the preamble)") from None
    except Exception as e:  # truncated header, bad VR... (messages may quote values: not shown)
        raise RecordError(path, f"DICOM header does not parse ({type(e).__name__})") from None


def _install_hint(name: str) -> str:
    for family in ("JPEG 2000", "JPEG-LS", "JPEG", "RLE"):
        if family in name:
            return _INSTALL_HINT[family]
    return "pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg"


def _decode(ds: Dataset, path: str | Path, reduce: float = 1.0) -> np.ndarray:
    """Stored pixel values: ``[rows, cols]`` or ``[frames, rows, cols]`` of a greyscale image.

    ``reduce`` >= 2 lets a JPEG 2000 image be decoded at a power-of-two fraction of its size, no
    smaller than ``1 / reduce`` (see :func:`_j2k_reduced`).
    """
    if not any(tag in ds for tag in _PIXEL_TAGS):
        raise RecordError(path, "no pixel data")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric not in ("MONOCHROME1", "MONOCHROME2") or int(ds.get("SamplesPerPixel", 1)) != 1:
        raise RecordError(path, f"PhotometricInterpretation {photometric or '(missing)'}: "
                                "expected a greyscale MONOCHROME1/MONOCHROME2 image")
    tsyntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if tsyntax is None:
        raise RecordError(path, "file meta has no TransferSyntaxUID")
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        raise RecordError(path, f"unsupported transfer syntax {tsyntax.name} ({tsyntax}): "
                                "pydicom has no pixel decoder for it") from None
    if not decoder.is_available:
        raise RecordError(path, f"no decoder installed for transfer syntax {tsyntax.name}; "
                                f"{_install_hint(tsyntax.name)}")
    if reduce >= 2 and (small := _j2k_reduced(ds, reduce)) is not None:
        return small
    try:
        arr = ds.pixel_array
    except Exception as e:  # decoder errors, pixel data length mismatch...
        raise RecordError(path, f"pixel data cannot be decoded ({tsyntax.name}): "
                                f"{type(e).__name__}: {_short(e)}") from None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if arr.ndim != (2 if frames == 1 else 3):
        raise RecordError(path, f"pixel array has shape {list(arr.shape)}, expected a greyscale image")
    return arr


def _j2k_reduced(ds: Dataset, reduce: float) -> np.ndarray | None:
    """A single-frame, unsigned, greyscale JPEG 2000 image decoded at 1/2^r of its size.

    JPEG 2000 stores a wavelet pyramid: Pillow's ``reduce`` decodes only the low-pass levels,
    e.g. 26 ms instead of 1.1 s for a 3000x2500 16-bit image (r = 3). The result is already
    low-pass filtered, so the resize that follows stays antialiased. Returns None (the caller
    decodes in full) when the file does not qualify or Pillow fails.
    """
    if (Image is None or ds.file_meta.TransferSyntaxUID not in (JPEG2000, JPEG2000Lossless)
            or int(ds.get("NumberOfFrames", 1) or 1) != 1 or int(ds.get("PixelRepresentation", 0)) != 0):
        return None
    try:
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    except Exception:  # noqa: BLE001 - the full decode will report the problem
        return None
    # A bare codestream (SOC, SIZ) with one component: Ssiz (byte 42) gives the precision and sign.
    if frame[:4] != b"\xff\x4f\xff\x51" or len(frame) < 43 or frame[40:42] != b"\x00\x01" or frame[42] & 0x80:
        return None
    precision = (frame[42] & 0x7F) + 1
    container = np.uint8 if precision <= 8 else np.uint16
    for level in range(int(np.log2(reduce)), 0, -1):  # fewer levels if the codestream has fewer
        try:
            with Image.open(io.BytesIO(frame)) as im:
                im.reduce = level
                im.load()
                arr = np.asarray(im)
        except Exception:  # noqa: BLE001
            continue
        expected = (-(-int(ds.Rows) // 2**level), -(-int(ds.Columns) // 2**level))
        if arr.dtype != container or arr.shape != expected or precision > 16:
            return None
        shift = 8 * container().itemsize - precision  # Pillow scales N-bit samples up to 8 or 16 bits
        return arr >> shift if shift else arr
    return None


def _short(e: Exception, n: int = 200) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return " ".join(lines)[:n]


# ---------------------------------------------------------------------------------------------
# Intensities
# ---------------------------------------------------------------------------------------------


def _voi_kind(voi: Dataset) -> str | None:
    """Which VOI transform pydicom's ``apply_voi_lut`` would apply: "lut", "window" or None."""
    seq = voi.get("VOILUTSequence")
    if seq and seq[0].get("LUTDescriptor") is not None and seq[0].get("LUTData") is not None:
        return "lut"
    if voi.get("WindowCenter") is not None and voi.get("WindowWidth") is not None:
        return "window"
    return None


def _voi_range(voi: Dataset) -> tuple[float, float] | None:
    """Output range of the VOI transform of ``voi`` (None when it has none)."""
    kind = _voi_kind(voi)
    if kind == "lut":
        descriptor = voi.VOILUTSequence[0].LUTDescriptor  # [entries (0 means 65536), first input, bits]
        n, first = int(descriptor[0]) or 65536, int(descriptor[1])
        table = apply_voi(np.arange(first, first + n, dtype=np.int64), voi)
        return float(table.min()), float(table.max())
    if kind == "window":
        with np.errstate(all="ignore"):
            lo, hi = apply_windowing(np.array([-np.inf, np.inf]), voi)
        return float(lo), float(hi)
    return None


def _apply_luts(values: np.ndarray, ds: Dataset, voi: Dataset) -> np.ndarray:
    """Stored ``values`` -> modality LUT of ``ds`` -> VOI of ``voi`` (float64, same shape)."""
    out = apply_rescale(values, ds)
    kind = _voi_kind(voi)
    if kind == "lut":
        out = apply_voi(np.round(out).astype(np.int64), voi)
    elif kind == "window":
        out = apply_windowing(out, voi)
    return out


def _display_values(stored: np.ndarray, ds: Dataset, voi: Dataset, path: str | Path) -> np.ndarray:
    """float32 image (same shape as ``stored``) after the modality and VOI transforms."""
    try:
        if np.issubdtype(stored.dtype, np.integer) and stored.size:
            lo, hi = int(stored.min()), int(stored.max())
            if hi - lo < _LUT_MAX:
                table = _apply_luts(np.arange(lo, hi + 1, dtype=np.int64), ds, voi).astype(np.float32)
                index = stored if lo == 0 else np.subtract(stored, lo, dtype=np.int32)
                return table[index]
        return _apply_luts(stored, ds, voi).astype(np.float32)
    except (ValueError, NotImplementedError, AttributeError, KeyError, TypeError) as e:
        raise RecordError(path, f"invalid modality/VOI LUT attributes: {_short(e)}") from None


def _to_unit(img: np.ndarray, lo: float, hi: float, monochrome1: bool) -> np.ndarray:
    """Affine map of ``[lo, hi]`` to [0, 1] (clipped), inverted for MONOCHROME1; float32."""
    if hi > lo:
        img = np.clip((img - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0)
    else:
        img = np.zeros_like(img)
    return (1.0 - img if monochrome1 else img).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------


def _triangle_weights(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` rows of a triangle filter, widened by the reduction factor; rows sum to 1."""
    scale = n_in / n_out
    support = max(1.0, scale)
    centres = (np.arange(n_out) + 0.5) * scale - 0.5
    w = np.clip(1.0 - np.abs(np.arange(n_in)[None, :] - centres[:, None]) / support, 0.0, None)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def _resize(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Antialiased resize of ``[..., H, W]`` float32 to ``[..., out_h, out_w]``."""
    h, w = img.shape[-2:]
    ky, kx = max(1, h // out_h), max(1, w // out_w)
    if ky > 1 or kx > 1:  # block mean; the remainder (< k pixels) is trimmed evenly from both sides
        th, tw = (h // ky) * ky, (w // kx) * kx
        top, left = (h - th) // 2, (w - tw) // 2
        img = img[..., top:top + th, left:left + tw]
        img = img.reshape(*img.shape[:-2], th // ky, ky, tw // kx, kx).mean(axis=(-3, -1), dtype=np.float32)
        h, w = img.shape[-2:]
    if (h, w) == (out_h, out_w):
        return np.ascontiguousarray(img, dtype=np.float32)
    wy, wx = _triangle_weights(h, out_h), _triangle_weights(w, out_w)
    return (wy @ img @ wx.T).astype(np.float32)


def _fit_content(img: np.ndarray, size: int, fit: str) -> np.ndarray:
    """``[..., H, W]`` -> the resized content: ``[..., size, size]`` (crop) or long side ``size`` (pad)."""
    h, w = img.shape[-2:]
    if fit == "crop":
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        return _resize(img[..., top:top + s, left:left + s], size, size)
    scale = size / max(h, w)
    return _resize(img, max(1, round(h * scale)), max(1, round(w * scale)))


def _pad_square(content: np.ndarray, size: int) -> np.ndarray:
    """Centre ``[..., h, w]`` on a zero ``[..., size, size]`` canvas."""
    h, w = content.shape[-2:]
    out = np.zeros((*content.shape[:-2], size, size), np.float32)
    top, left = (size - h) // 2, (size - w) // 2
    out[..., top:top + h, left:left + w] = content
    return out


def _check_args(size: int, fit: str) -> None:
    if fit not in ("pad", "crop"):
        raise ConfigError(f"image.fit={fit!r} is not one of pad, crop")
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ConfigError(f"image.size={size!r} must be a positive integer")


# ---------------------------------------------------------------------------------------------
# Public readers
# ---------------------------------------------------------------------------------------------


@_record_errors
def read_cxr(path: str | Path, *, size: int = 224, fit: str = "pad") -> np.ndarray:
    """Read a single-frame greyscale radiograph as displayed (bone bright).

    Returns:
        float32 ``[size, size]`` in [0, 1].

    Raises:
        RecordError: missing file, not DICOM, no pixel data, no decoder, undecodable or
            multi-frame/colour pixel data.
    """
    _check_args(size, fit)
    ds = _read(path)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise RecordError(path, f"multi-frame file ({frames} frames): a CXR must be a single image")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    reduce = (max(rows, cols) if fit == "pad" else min(rows, cols)) / size
    values = _display_values(_decode(ds, path, reduce), ds, ds, path)
    lo_hi = _voi_range(ds) or (float(values.min()), float(values.max()))
    content = _fit_content(values, size, fit)
    content = _to_unit(content, *lo_hi, monochrome1=ds.PhotometricInterpretation == "MONOCHROME1")
    return content if fit == "crop" else _pad_square(content, size)


def _frame_files(folder: Path) -> list[Path]:
    """The files of a cine folder that are read as its frames (hidden files and DICOMDIR skipped)."""
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.name not in _SKIP_FILES)
    if not files:
        raise RecordError(folder, "empty folder: no DICOM frames for the cine")
    return files


def _series_from_folder(folder: Path) -> tuple[list[Dataset], list[np.ndarray], np.ndarray | None]:
    """Single-frame datasets of a folder, their stored frames, and trigger times (ms) if usable."""
    items = []
    for f in _frame_files(folder):
        ds = _read(f)
        if int(ds.get("NumberOfFrames", 1) or 1) != 1:
            raise RecordError(f, "a cine folder must hold single-frame files; this one is multi-frame")
        trigger = ds.get("TriggerTime")
        key = (float(trigger) if trigger not in (None, "") else 0.0, int(ds.get("InstanceNumber", 0) or 0), f.name)
        items.append((key, f, ds))
    items.sort(key=lambda item: item[0])
    series = {str(ds.get("SeriesInstanceUID", "")) for _, _, ds in items}
    if len(series) > 1:
        raise RecordError(folder, f"folder holds {len(series)} series; a cine folder must hold one")
    shapes = {(int(ds.Rows), int(ds.Columns)) for _, _, ds in items if "Rows" in ds}
    if len(shapes) > 1:
        raise RecordError(folder, f"mixed image sizes in one series: {sorted(shapes)}")
    datasets = [ds for _, _, ds in items]
    stored = [_decode(ds, f) for _, f, ds in items]
    times = np.array([key[0] for key, _, _ in items])
    return datasets, stored, times if np.all(np.diff(times) > 0) else None


def _resample_cycle(x: np.ndarray, times: np.ndarray | None, frames: int) -> np.ndarray:
    """``[n, h, w]`` frames over one periodic cycle -> ``[frames, h, w]`` by linear interpolation.

    ``times`` (increasing) places the input frames in time; None means equally spaced. The cycle
    length is the last time plus the median frame spacing, so the last frame blends into the first.
    """
    n = x.shape[0]
    t = np.arange(n, dtype=np.float64) if times is None else np.asarray(times, np.float64) - times[0]
    period = t[-1] + (float(np.median(np.diff(t))) if n > 1 else 1.0)
    out_t = np.arange(frames) * period / frames
    i0 = np.clip(np.searchsorted(t, out_t, side="right") - 1, 0, n - 1)
    t1 = np.where(i0 + 1 < n, t[np.minimum(i0 + 1, n - 1)], period)
    a = ((out_t - t[i0]) / (t1 - t[i0])).astype(np.float32)[:, None, None]
    return (1 - a) * x[i0] + a * x[(i0 + 1) % n]


@_record_errors
def read_cine(path_or_dir: str | Path, *, frames: int = 50, size: int = 224, fit: str = "pad") -> np.ndarray:
    """Read a cine series (multi-frame file or folder of single frames) over one cardiac cycle.

    Returns:
        float32 ``[frames, size, size]`` in [0, 1], one intensity window for all frames.

    Raises:
        RecordError: as :func:`read_cxr`, plus an empty folder, several series or mixed sizes.
    """
    _check_args(size, fit)
    if frames < 1:
        raise ConfigError(f"image.cine_frames={frames} must be >= 1")
    path = Path(path_or_dir)
    if path.is_dir():
        datasets, stored, times = _series_from_folder(path)
        ref = datasets[0]
        values = np.stack([_display_values(s, ds, ref, path) for s, ds in zip(stored, datasets)])
    else:
        ref = _read(path)
        if int(ref.get("NumberOfFrames", 1) or 1) < 2:
            raise RecordError(path, "single-frame file: a cine needs a multi-frame file or a folder of frames")
        values, times = _display_values(_decode(ref, path), ref, ref, path), None
    if values.shape[0] < 2:
        raise RecordError(path, "a cine needs at least 2 frames")
    lo_hi = _voi_range(ref) or (float(values.min()), float(values.max()))
    content = _resample_cycle(_fit_content(values, size, fit), times, frames)
    content = _to_unit(content, *lo_hi, monochrome1=ref.PhotometricInterpretation == "MONOCHROME1")
    return content if fit == "crop" else _pad_square(content, size)


class NativeGeometry(NamedTuple):
    """What one record holds: ``frames`` (1 for a single image), ``rows``, ``columns``."""

    frames: int
    rows: int
    columns: int


@_record_errors
def native_geometry(path_or_dir: str | Path, kind: str) -> NativeGeometry:
    """The stored geometry of a CXR (``kind="cxr"``) or cine (``"cine"``) from DICOM headers only.

    Pixel data is never read. A multi-frame file gives its NumberOfFrames; a cine folder gives the
    number of files :func:`read_cine` would take as frames, and the Rows/Columns of the first one.

    Raises:
        RecordError: missing file, not DICOM, empty folder, no Rows/Columns in the header.
    """
    if kind not in ("cxr", "cine"):
        raise ConfigError(f"image kind {kind!r} is not one of cxr, cine")
    path = Path(path_or_dir)
    if kind == "cine" and path.is_dir():
        files = _frame_files(path)
        ds, frames = _read(files[0], pixels=False), len(files)
    else:
        ds = _read(path, pixels=False)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows < 1 or cols < 1:
        raise RecordError(path, "no Rows/Columns in the DICOM header")
    return NativeGeometry(frames, rows, cols)


@_record_errors
def dicom_summary(path: str | Path) -> dict[str, object]:
    """Technical, non-identifying attributes of a DICOM file, for logs (pixel data not read)."""
    ds = _read(path, pixels=False)
    tsyntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None

    def get(keyword: str, cast: type = str) -> object:
        value = ds.get(keyword)
        return None if value in (None, "") else cast(value)

    return {
        "modality": get("Modality"),
        "rows": get("Rows", int),
        "columns": get("Columns", int),
        "frames": get("NumberOfFrames", int) or 1,
        "bits_allocated": get("BitsAllocated", int),
        "bits_stored": get("BitsStored", int),
        "photometric": get("PhotometricInterpretation"),
        "transfer_syntax": None if tsyntax is None else tsyntax.name,
        "transfer_syntax_uid": None if tsyntax is None else str(tsyntax),
        "view_position": get("ViewPosition"),
    }
