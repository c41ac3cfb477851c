"""Build a cohort manifest from a plain CSV of pairs (UK Biobank ECG–CMR, or any other cohort).

One row per ECG–image pair. Default column names are the manifest's own; ``column_map`` renames
(manifest name -> CSV name), e.g. for a UK Biobank export::

    eid,ecg_path,cmr_path,ecg_time,cmr_time,mi,cardiomyopathy,af,hf
    1000394,ecg/1000394_20205_2_0.hea,cmr/1000394_20209_2_0,2016-05-11 09:12:00,2016-05-11 10:02:31,0,0,0,0

    build_csv_manifest("pairs.csv", "cohort/manifest.parquet", image_kind="cine",
                       label_columns=["mi", "cardiomyopathy", "af", "hf"],
                       column_map={"subject_id": "eid", "image_path": "cmr_path", "image_time": "cmr_time"})

- ``subject_id``, ``ecg_path``, ``image_path`` are required; ``ecg_time``, ``image_time`` and
  ``pair_id`` are optional (times null, ``pair_id`` = ``<subject>-<hash of both paths>``).
- Relative paths are relative to the CSV's folder. ``ecg_path`` names a WFDB record, with or
  without extension; the manifest stores its ``.hea``. ``image_path`` is a DICOM file, or a
  folder holding one DICOM series (cine).
- Label values: 1 / 0 / blank (unknown); anything else is an error listing the rows.
- ``check_files``: every row's ECG header and image must exist; ``missing="error"`` lists the
  bad rows in one :class:`ManifestError`, ``missing="drop"`` drops and counts them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from xmodal.data.manifest import IMAGE_KINDS, BuildReport, describe, save_manifest, snake_case
from xmodal.data.splits import assign_splits
from xmodal.errors import ConfigError, ManifestError

REQUIRED = ("subject_id", "ecg_path", "image_path")
OPTIONAL = ("ecg_time", "image_time", "pair_id")
ROW_EXAMPLES = 5


def _lines(mask: np.ndarray) -> str:
    """CSV line numbers (header is line 1) of the rows in ``mask``, a few of them."""
    rows = np.flatnonzero(mask) + 2
    more = f" (+{len(rows) - ROW_EXAMPLES} more)" if len(rows) > ROW_EXAMPLES else ""
    return "line(s) " + ", ".join(map(str, rows[:ROW_EXAMPLES])) + more


def _ecg_header(p: str) -> str:
    root, ext = os.path.splitext(p)
    return (root if ext.lower() in (".hea", ".dat", ".mat") else p) + ".hea"


def _image_present(p: str) -> bool:
    if os.path.isfile(p):
        return True
    return os.path.isdir(p) and any(e.is_file() for e in os.scandir(p))


def build_csv_manifest(csv_path: str | Path, out_path: str | Path, *, image_kind: str,
                       label_columns: Sequence[str] | Mapping[str, str],
                       column_map: Mapping[str, str] | None = None, split_seed: int = 0,
                       fractions: Sequence[float] = (0.8, 0.1, 0.1), check_files: bool = True,
                       missing: str = "error", verbose: bool = False) -> BuildReport:
    """Turn a CSV of ECG–image pairs into a validated manifest at ``out_path``.

    ``label_columns`` lists CSV columns (stored snake_case) or maps CSV name -> label name.
    Raises :class:`ManifestError` for a missing CSV, missing columns (all listed), bad label or
    time values, and (``check_files``, ``missing="error"``) missing files with their CSV lines.
    Splits are by subject, stratified over the label columns (:func:`~xmodal.data.splits.assign_splits`;
    a label with >= 10 positive subjects that cannot get both classes in every split raises ManifestError).
    """
    if image_kind not in IMAGE_KINDS:
        raise ConfigError(f"image_kind={image_kind!r} is not one of {', '.join(IMAGE_KINDS)}")
    if missing not in ("error", "drop"):
        raise ConfigError(f"missing={missing!r} is not one of error, drop")
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise ManifestError(f"{csv_path}: CSV of pairs not found")
    cmap = {c: c for c in REQUIRED + OPTIONAL} | dict(column_map or {})
    unknown = sorted(set(cmap) - set(REQUIRED + OPTIONAL))
    if unknown:
        raise ConfigError(f"column_map key(s) {', '.join(unknown)} are not manifest columns; "
                          f"valid: {', '.join(REQUIRED + OPTIONAL)}")
    labels = dict(label_columns) if isinstance(label_columns, Mapping) else \
        {c: snake_case(c) for c in label_columns}

    try:
        raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ManifestError(f"{csv_path}: not a readable CSV ({e})") from None
    needed = [cmap[c] for c in REQUIRED] + list(labels)
    absent = [c for c in needed if c not in raw.columns]
    if absent:
        raise ManifestError(f"{csv_path}: missing column(s) {', '.join(absent)}; found {', '.join(raw.columns)}"
                            + ("" if column_map else " (rename with column_map={manifest name: CSV name})"))

    problems: list[str] = []
    base = str(csv_path.absolute().parent)
    df = pd.DataFrame({c: raw[cmap[c]].str.strip() for c in REQUIRED})
    for c in REQUIRED:
        empty = (df[c] == "").to_numpy()
        if empty.any():
            problems.append(f"column {cmap[c]} is empty on {_lines(empty)}")
    df["ecg_path"] = [_ecg_header(os.path.join(base, p)) for p in df["ecg_path"]]
    df["image_path"] = [os.path.normpath(os.path.join(base, p)).rstrip(os.sep) for p in df["image_path"]]
    for c in ("ecg_time", "image_time"):
        text = raw[cmap[c]].str.strip() if cmap[c] in raw.columns else pd.Series("", index=raw.index)
        t = pd.to_datetime(text.mask(text == ""), format="ISO8601", errors="coerce")
        bad = (t.isna() & (text != "")).to_numpy()
        if bad.any():
            problems.append(f"column {cmap[c]} has unreadable time(s) on {_lines(bad)}")
        df[c] = t.astype("datetime64[us]")
    for src, name in labels.items():
        text = raw[src].str.strip()
        v = pd.to_numeric(text.mask(text == ""), errors="coerce").astype("float64")
        bad = ((text != "") & ~v.isin([0.0, 1.0])).to_numpy()
        if bad.any():
            problems.append(f"label column {src} has value(s) other than 1, 0, blank on {_lines(bad)}")
        df[name] = v
    if problems:
        raise ManifestError(f"{csv_path}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))

    if cmap["pair_id"] in raw.columns:
        df["pair_id"] = raw[cmap["pair_id"]].str.strip()
    else:
        df["pair_id"] = [f"{s}-{hashlib.sha1(f'{e}|{i}'.encode()).hexdigest()[:10]}"
                         for s, e, i in zip(df["subject_id"], raw[cmap["ecg_path"]], raw[cmap["image_path"]])]
    df["image_kind"] = image_kind

    report = BuildReport(Path(out_path))
    report.steps.append(("CSV rows", len(df)))
    if check_files:
        ok = np.array([os.path.isfile(e) and _image_present(i) for e, i in zip(df["ecg_path"], df["image_path"])],
                      bool)
        if not ok.all() and missing == "error":
            raise ManifestError(f"{csv_path}: {int((~ok).sum())} row(s) name an ECG header or image that does not "
                                f"exist: {_lines(~ok)} (pass missing='drop' to skip them)")
        df = df[ok].reset_index(drop=True)
        report.steps.append(("rows with both files on disk", len(df)))

    df["split"] = assign_splits(df["subject_id"], fractions=fractions, seed=split_seed,
                                labels=df[list(labels.values())])
    report.steps.append(("pairs", len(df)))
    report.manifest_path = save_manifest(df, out_path)
    report.splits, report.labels = describe(df)
    if verbose:
        print(report)
    return report
