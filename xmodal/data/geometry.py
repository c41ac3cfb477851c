"""The image geometry a cohort is preprocessed at: the configured sizes are a ceiling, not a target.

``ImagePreprocessConfig.size`` and ``cine_frames`` would otherwise upsample small images: a cohort of
32 x 32 px, 16-frame cines became 224 x 224 x 50 rows (150x the pixels the files hold) and the search
ran out of memory. So before preprocessing, the DICOM headers of a deterministic sample of records
(up to ``SAMPLE``, evenly spaced in ``pair_id`` order) are read without decoding pixels, and

    size   = min(image.size,        the largest native side in the sample)
    frames = min(image.cine_frames, the largest frame count in the sample)      (cines only)

The native side is the one the fit maps to ``size``: ``min(rows, columns)`` for ``fit="crop"`` (the
square it crops), ``max(rows, columns)`` for ``fit="pad"`` (the long side; the short one is padded), so
neither fit upsamples the sampled images nor shrinks them below what they hold.

A sampled record that cannot be read is skipped (the bad-record path lists it later); when none can
be read the configured sizes are used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd

from xmodal.config import ImagePreprocessConfig
from xmodal.data.dicom import NativeGeometry, native_geometry
from xmodal.errors import RecordError

SAMPLE = 32  # records whose headers are read per cohort


@dataclass(frozen=True)
class ImageGeometry:
    """The effective image geometry of one cohort, and what it was derived from."""

    kind: str  # "cxr" | "cine"
    size: int  # side of the stored square image
    frames: int | None  # stored frames of a cine; None for a CXR
    ceiling: tuple[int, int]  # the configured (image.size, image.cine_frames)
    native: NativeGeometry | None  # largest frame count; rows, columns of the largest native side; None: none read
    sampled: int = 0  # records in the sample
    probed: int = 0  # of those, records whose header could be read

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one stored image: ``(size, size)`` or ``(frames, size, size)``."""
        return ((self.frames,) if self.frames is not None else ()) + (self.size, self.size)

    @property
    def capped(self) -> bool:
        """True when the cohort holds less than the configured sizes."""
        return self.size < self.ceiling[0] or (self.frames is not None and self.frames < self.ceiling[1])

    def to_dict(self) -> dict[str, Any]:
        """What meta.json records next to ``image_shape``: the native sample and the configured ceiling."""
        return {"native": None if self.native is None else self.native._asdict(),
                "ceiling": {"size": self.ceiling[0], "cine_frames": self.ceiling[1]},
                "sampled": self.sampled, "probed": self.probed}

    def describe(self) -> str:
        """One log line: what the cohort holds and what preprocessing uses."""
        cine = self.frames is not None
        at = f"{self.size} px" + (f", {self.frames} frames" if cine else "")
        ceiling = f"image.size={self.ceiling[0]}" + (f", image.cine_frames={self.ceiling[1]}" if cine else "")
        if self.native is None:
            return (f"[xmodal] images: none of the {self.sampled} sampled headers could be read; "
                    f"preprocessing at the configured {at} ({ceiling})")
        n = self.native
        holds = f"{n.rows}x{n.columns} px" + (f", {n.frames} frames" if cine else "")
        note = f"{ceiling} {'are ceilings' if cine else 'is a ceiling'}" if self.capped else ceiling
        return f"[xmodal] images: the cohort holds {holds}; preprocessing at {at} ({note})"


def sample_paths(manifest: pd.DataFrame, n: int = SAMPLE) -> list[str]:
    """``image_path`` of up to ``n`` evenly spaced rows in ``pair_id`` order (independent of row order)."""
    paths = manifest.sort_values("pair_id")["image_path"].tolist()
    if not paths:
        return []
    idx = np.unique(np.round(np.linspace(0, len(paths) - 1, min(n, len(paths)))).astype(int))
    return [paths[i] for i in idx]


def probe(paths: Iterable[str], kind: str) -> list[NativeGeometry]:
    """The native geometry of each readable record; unreadable ones are skipped."""
    found = []
    for path in paths:
        try:
            found.append(native_geometry(path, kind))
        except RecordError:
            continue
    return found


def native_side(g: NativeGeometry, fit: str) -> int:
    """The side of a ``g`` image that ``fit`` maps to ``image.size``: short for crop, long for pad."""
    return min(g.rows, g.columns) if fit == "crop" else max(g.rows, g.columns)


def effective_geometry(image: ImagePreprocessConfig, kind: str, natives: list[NativeGeometry],
                       sampled: int | None = None) -> ImageGeometry:
    """The configured sizes capped by the largest the ``natives`` hold (the configured ones if empty)."""
    ceiling = (image.size, image.cine_frames)
    frames = image.cine_frames if kind == "cine" else None
    sampled = len(natives) if sampled is None else sampled
    if not natives:
        return ImageGeometry(kind, image.size, frames, ceiling, None, sampled, 0)
    biggest = max(natives, key=lambda g: native_side(g, image.fit))
    most_frames = max(g.frames for g in natives)
    native = NativeGeometry(most_frames, biggest.rows, biggest.columns)
    size = min(image.size, native_side(biggest, image.fit))
    if frames is not None:
        frames = min(frames, most_frames)
    return ImageGeometry(kind, size, frames, ceiling, native, sampled, len(natives))


def cohort_geometry(manifest: pd.DataFrame, image: ImagePreprocessConfig, kind: str, *,
                    sample: int = SAMPLE) -> ImageGeometry:
    """Probe a sample of the manifest's images (headers only) and cap the configured sizes by them."""
    paths = sample_paths(manifest, sample)
    return effective_geometry(image, kind, probe(paths, kind), sampled=len(paths))
