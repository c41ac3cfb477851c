"""Cohort manifests: one Parquet table of ECG–image pairs, validated on every load.

Schema, in this column order::

    pair_id     string     unique per row
    subject_id  string     de-identified subject id; splits are by subject, never by row
    ecg_path    string     WFDB record header (``.hea``)
    image_path  string     DICOM file (``cxr``) or folder of one DICOM cine series (``cine``)
    image_kind  string     "cxr" | "cine"
    split       string     "train" | "val" | "test"
    ecg_time    timestamp  may be null
    image_time  timestamp  may be null
    <label>...  float64    one column per pathology: 1.0 positive, 0.0 negative, NaN unknown

Label columns are snake_case: ``cardiomegaly, pleural_effusion, edema`` for CXR cohorts and
``mi, cardiomyopathy, af, hf`` for cardiac MRI cohorts (any other snake_case name is accepted).
Their names are also stored in the Parquet schema metadata (``xmodal.labels``).

Paths under the manifest's folder are stored relative to it, so a cohort folder can be moved or
copied whole; paths elsewhere are stored absolute. :func:`load_manifest` returns absolute paths.
Manifests can live on any ``pyarrow.fs`` URI (``s3://``, ``gs://``, ``file://``): there, relative
paths are joined to the manifest folder's URI.

    report = build_mimic_manifest(ecg_root, cxr_root, "cohort/manifest.parquet")
    df = load_manifest("cohort/manifest.parquet")   # validated; ManifestError lists every problem
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from xmodal.data.splits import SPLITS
from xmodal.errors import ManifestError

MANIFEST_VERSION = "1"
STRING_COLUMNS = ("pair_id", "subject_id", "ecg_path", "image_path", "image_kind", "split")
TIME_COLUMNS = ("ecg_time", "image_time")
FIXED_COLUMNS = STRING_COLUMNS + TIME_COLUMNS
PATH_COLUMNS = ("ecg_path", "image_path")
IMAGE_KINDS = ("cxr", "cine")
CXR_LABELS = ("cardiomegaly", "pleural_effusion", "edema")
CMR_LABELS = ("mi", "cardiomyopathy", "af", "hf")
EXAMPLES = 3  # example rows quoted per problem
_SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def snake_case(name: str) -> str:
    """``"Pleural Effusion"`` -> ``"pleural_effusion"``."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def label_columns(df: pd.DataFrame) -> list[str]:
    """The label columns of a manifest, in column order (every column that is not fixed)."""
    return [c for c in df.columns if c not in FIXED_COLUMNS]


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------


def _examples(df: pd.DataFrame, mask: np.ndarray | pd.Series) -> str:
    """``"pair_id=a, b, c (+4 more)"``: rows named by pair_id (or row number), never by subject."""
    mask = np.asarray(mask, bool)
    n = int(mask.sum())
    if "pair_id" in df.columns:
        names = [str(x) for x in df["pair_id"].to_numpy()[mask][:EXAMPLES]]
        head = "pair_id=" + ", ".join(names)
    else:
        head = "rows " + ", ".join(str(i) for i in np.flatnonzero(mask)[:EXAMPLES])
    return head + (f" (+{n - EXAMPLES} more)" if n > EXAMPLES else "")


def _is_string_column(s: pd.Series) -> bool:
    if pd.api.types.is_string_dtype(s.dtype) and s.dtype != object:
        return True
    return s.dtype == object and all(isinstance(v, str) for v in s.dropna())


def _is_time_column(s: pd.Series) -> bool:
    if pd.api.types.is_datetime64_dtype(s.dtype):  # tz-naive only
        return True
    return bool(s.isna().all())  # an all-null column of any type is an all-unknown time


def validate_manifest(df: pd.DataFrame) -> list[str]:
    """Every problem of a manifest table, one line each (empty list: valid)."""
    problems: list[str] = []
    missing = [c for c in FIXED_COLUMNS if c not in df.columns]
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)} (required: {', '.join(FIXED_COLUMNS)})")

    for c in STRING_COLUMNS:
        if c not in df.columns:
            continue
        s = df[c]
        if not _is_string_column(s):
            problems.append(f"column {c} must hold strings, found dtype {s.dtype}")
            continue
        empty = s.isna() | (s.astype(object).fillna("").map(str).str.len() == 0)
        if empty.any():
            problems.append(f"column {c} has {int(empty.sum())} empty value(s): {_examples(df, empty)}")
    for c in TIME_COLUMNS:
        if c in df.columns and not _is_time_column(df[c]):
            problems.append(f"column {c} must be a tz-naive timestamp (or null), found dtype {df[c].dtype}")

    for c, allowed in (("image_kind", IMAGE_KINDS), ("split", SPLITS)):
        if c in df.columns and _is_string_column(df[c]):
            bad = ~df[c].isin(allowed) & df[c].notna()
            if bad.any():
                values = sorted({str(v) for v in df.loc[bad, c]})[:EXAMPLES]
                problems.append(f"column {c} has {int(bad.sum())} value(s) not in {', '.join(allowed)} "
                                f"(found {', '.join(map(repr, values))}): {_examples(df, bad)}")

    if "pair_id" in df.columns:
        dup = df["pair_id"].duplicated(keep=False) & df["pair_id"].notna()
        if dup.any():
            problems.append(f"{int(df.loc[dup, 'pair_id'].nunique())} duplicated pair_id value(s): "
                            f"{_examples(df, dup)}")

    for c in label_columns(df):
        s = df[c]
        if not _SNAKE.match(str(c)):
            problems.append(f"label column {c!r} must be snake_case (e.g. {snake_case(str(c))!r})")
        if not pd.api.types.is_float_dtype(s.dtype):
            problems.append(f"label column {c} must be float (1.0 / 0.0 / NaN), found dtype {s.dtype}")
            continue
        bad = s.notna() & ~s.isin([0.0, 1.0])
        if bad.any():
            values = sorted({float(v) for v in s[bad]})[:EXAMPLES]
            problems.append(f"label column {c} has {int(bad.sum())} value(s) outside {{0, 1, NaN}} "
                            f"(found {', '.join(map(str, values))}): {_examples(df, bad)}")

    leak = _leaking_rows(df)
    if leak is not None and leak.any():
        n_subj = int(df.loc[leak, "subject_id"].nunique())
        problems.append(f"{n_subj} subject(s) appear in more than one split (leakage): {_examples(df, leak)}")
    return problems


def _leaking_rows(df: pd.DataFrame) -> pd.Series | None:
    """Rows whose subject appears in more than one split (None if the columns are missing)."""
    if "subject_id" not in df.columns or "split" not in df.columns:
        return None
    n_splits = df.groupby("subject_id", sort=False, dropna=False)["split"].transform("nunique")
    return n_splits > 1


def check_manifest(df: pd.DataFrame, *, source: object = "manifest") -> None:
    """Raise one :class:`ManifestError` listing every problem of ``df`` (``source`` names it)."""
    problems = validate_manifest(df)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ManifestError(f"{source}: invalid manifest ({len(problems)} problem(s)):\n{lines}")


def check_no_leakage(df: pd.DataFrame) -> None:
    """Refuse a manifest in which a subject appears in two splits."""
    leak = _leaking_rows(df)
    if leak is None:
        raise ManifestError("cannot check split leakage: the table needs subject_id and split columns")
    if leak.any():
        n_subj = int(df.loc[leak, "subject_id"].nunique())
        raise ManifestError(f"{n_subj} subject(s) appear in more than one split: {_examples(df, leak)}; "
                            "assign splits by subject (xmodal.data.splits.assign_splits)")


def label_split_problem(split: pd.Series, label: pd.Series, name: str) -> str | None:
    """Why ``name`` cannot be trained and selected on (empty train/val, one class in either), or None."""
    for part in ("train", "val"):
        y = label[split == part].dropna()
        if len(y) == 0:
            return f"the {part} split has no rows with a known {name!r} label"
        if y.nunique() < 2:
            return (f"{name!r} has a single class ({y.iloc[0]:g}) in the {part} split; "
                    "AUROC is undefined — choose another label or re-split")
    return None


# ----------------------------------------------------------------------------------------------
# Paths
# ----------------------------------------------------------------------------------------------


def _is_uri(p: object) -> bool:
    return isinstance(p, str) and "://" in p


def _local_of_uri(uri: str) -> str | None:
    """The local path of a ``file://`` URI (None for any other scheme)."""
    parts = urlsplit(uri)
    return unquote(parts.path) if parts.scheme == "file" else None


def _folder(manifest_path: str | Path) -> str:
    """The manifest's folder: a local absolute path, or a URI (``s3://bucket/cohort``) when remote."""
    text = os.fspath(manifest_path)
    if _is_uri(text):
        local = _local_of_uri(text)
        return os.path.dirname(local) if local is not None else text.rstrip("/").rsplit("/", 1)[0]
    return os.path.dirname(os.path.abspath(text))


def _join_uri(base: str, rel: str) -> str:
    """``("s3://b/cohort", "ecg/../x.hea")`` -> ``"s3://b/x.hea"``."""
    scheme, rest = base.split("://", 1)
    return f"{scheme}://{posixpath.normpath(rest + '/' + rel)}"


def resolve_paths(df: pd.DataFrame, manifest_path: str | Path) -> pd.DataFrame:
    """A copy of ``df`` whose relative paths are made absolute against the manifest's folder.

    For a remote manifest (``s3://``, ``gs://``...) relative paths are joined to its folder's URI.
    """
    base = _folder(manifest_path)
    remote = _is_uri(base)

    def absolute(p: object) -> object:
        if not isinstance(p, str) or _is_uri(p) or os.path.isabs(p):
            return p
        return _join_uri(base, p) if remote else os.path.normpath(os.path.join(base, p))

    out = df.copy()
    for c in PATH_COLUMNS:
        if c in out.columns:
            out[c] = [absolute(p) for p in out[c]]
    return out


def relativize_paths(df: pd.DataFrame, manifest_path: str | Path) -> pd.DataFrame:
    """A copy of ``df`` with paths under the manifest's folder made relative (POSIX separators).

    Relative input paths are taken relative to the current directory, as Python does. For a
    remote manifest, URIs under its folder's URI become relative; other paths are kept.
    """
    base = _folder(manifest_path)
    remote = _is_uri(base)

    def rel(p: object) -> object:
        if not isinstance(p, str):
            return p
        if _is_uri(p):
            return p[len(base) + 1:] if remote and p.startswith(base + "/") else p
        p = os.path.abspath(p)
        if not remote and os.path.commonpath([base, p]) == base:
            return Path(os.path.relpath(p, base)).as_posix()
        return p

    out = df.copy()
    for c in PATH_COLUMNS:
        if c in out.columns:
            out[c] = [rel(p) for p in out[c]]
    return out


# ----------------------------------------------------------------------------------------------
# Parquet I/O
# ----------------------------------------------------------------------------------------------


def arrow_schema(labels: Sequence[str]) -> pa.Schema:
    """The Parquet schema of a manifest with these label columns."""
    fields = [pa.field(c, pa.string(), nullable=False) for c in STRING_COLUMNS]
    fields += [pa.field(c, pa.timestamp("us")) for c in TIME_COLUMNS]
    fields += [pa.field(c, pa.float64()) for c in labels]
    meta = {"xmodal.manifest_version": MANIFEST_VERSION, "xmodal.labels": json.dumps(list(labels))}
    return pa.schema(fields, metadata=meta)


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Fixed columns first, labels after; integer/bool labels become float; times become datetimes."""
    out = df.copy()
    for c in TIME_COLUMNS:
        if c not in out.columns:
            continue
        if pd.api.types.is_datetime64_dtype(out[c].dtype):
            out[c] = out[c].dt.floor("us").astype("datetime64[us]")
        elif out[c].isna().all():
            out[c] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[us]")
    for c in label_columns(out):
        if pd.api.types.is_bool_dtype(out[c].dtype) or pd.api.types.is_integer_dtype(out[c].dtype):
            out[c] = out[c].astype("float64")
    cols = [c for c in FIXED_COLUMNS if c in out.columns] + label_columns(out)
    return out[cols].reset_index(drop=True)


def _filesystem(path: str | Path) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, path on it)`` of a local path or any ``pyarrow.fs`` URI."""
    text = os.fspath(path)
    if not _is_uri(text):
        return pafs.LocalFileSystem(), os.path.abspath(text)
    try:
        return pafs.FileSystem.from_uri(text)
    except (pa.ArrowException, ValueError, OSError) as e:
        raise ManifestError(f"{text}: cannot open this URI with pyarrow.fs ({e})") from None


def save_manifest(df: pd.DataFrame, path: str | Path, *, metadata: dict[str, str] | None = None) -> Path | str:
    """Validate ``df`` and write it to ``path`` (Parquet, atomically); returns the path.

    ``path`` is a local path or a ``pyarrow.fs`` URI (``s3://``, ``gs://``, ``file://``). Paths
    under its folder are stored relative to it. ``metadata`` adds entries to the schema metadata
    (read back with :func:`manifest_metadata`). Raises :class:`ManifestError` listing every
    problem when the table is not a valid manifest.
    """
    df = _normalise(df)
    check_manifest(df, source=path)
    labels = label_columns(df)
    schema = arrow_schema(labels)
    assert not set(metadata or {}) & {k.decode() for k in schema.metadata}, "metadata would replace xmodal's keys"
    table = pa.Table.from_pandas(relativize_paths(df, path), schema=schema, preserve_index=False)
    table = table.replace_schema_metadata({**schema.metadata, **(metadata or {})})
    fs, target = _filesystem(path)
    if not isinstance(fs, pafs.LocalFileSystem):  # an object store writes each object atomically
        fs.create_dir(posixpath.dirname(target), recursive=True)
        pq.write_table(table, target, filesystem=fs)
        return os.fspath(path)
    local = Path(target)
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f".{local.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, local)
    return os.fspath(path) if _is_uri(os.fspath(path)) else Path(path)


def manifest_labels(path: str | Path) -> list[str]:
    """The label names stored in a manifest's schema metadata (reads the footer only)."""
    schema = _read_schema(path)
    raw = (schema.metadata or {}).get(b"xmodal.labels")
    if raw is None:
        return [n for n in schema.names if n not in FIXED_COLUMNS]
    return list(json.loads(raw))


def manifest_metadata(path: str | Path) -> dict[str, str]:
    """A manifest's schema metadata as text (reads the footer only); pandas' own entry left out."""
    meta = _read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items() if k != b"pandas"}


def _read_schema(path: str | Path) -> pa.Schema:
    fs, target = _filesystem(path)
    if fs.get_file_info(target).type != pafs.FileType.File:
        raise ManifestError(f"{path}: manifest not found (build one with build_mimic_manifest / "
                            "build_csv_manifest, or leave data.manifest empty for the synthetic demo)")
    try:
        return pq.read_schema(target, filesystem=fs)
    except (pa.ArrowException, OSError) as e:
        raise ManifestError(f"{path}: not a Parquet manifest ({e})") from None


def load_manifest(path: str | Path, *, resolve: bool = True) -> pd.DataFrame:
    """Read and validate a manifest; paths come back absolute unless ``resolve=False``.

    ``path`` is a local path or a ``pyarrow.fs`` URI. Relative paths are resolved against the
    manifest's folder: a local folder (``file://`` included), or the folder's URI when remote.
    Raises :class:`ManifestError` naming the file when it is missing or not Parquet, and one
    ``ManifestError`` listing every problem when its content is invalid.
    """
    _read_schema(path)
    fs, target = _filesystem(path)
    try:
        table = pq.read_table(target, filesystem=fs)
    except (pa.ArrowException, OSError) as e:
        raise ManifestError(f"{path}: not a readable Parquet manifest ({e})") from None
    df = table.to_pandas()
    for c in TIME_COLUMNS:  # older writers may store times as strings; keep only real timestamps
        if c in df.columns and df[c].isna().all():
            df[c] = pd.Series(pd.NaT, index=df.index, dtype="datetime64[us]")
    check_manifest(df, source=path)
    df = df[list(FIXED_COLUMNS) + label_columns(df)]
    return resolve_paths(df, path) if resolve else df


# ----------------------------------------------------------------------------------------------
# Build reports (shared by the MIMIC and CSV builders)
# ----------------------------------------------------------------------------------------------


@dataclass
class BuildReport:
    """What a manifest builder did: counts at each step, splits and label statistics."""

    manifest_path: Path | str  # a local path or a pyarrow.fs URI
    steps: list[tuple[str, int]] = field(default_factory=list)  # ordered funnel: (step, count)
    splits: dict[str, tuple[int, int]] = field(default_factory=dict)  # split -> (subjects, pairs)
    labels: dict[str, dict[str, float]] = field(default_factory=dict)  # label -> pos/neg/unknown/...
    notes: list[str] = field(default_factory=list)

    @property
    def pairs(self) -> int:
        return sum(p for _, p in self.splits.values())

    def count(self, step: str) -> int:
        """The count of the first step whose name starts with ``step``."""
        for name, n in self.steps:
            if name.startswith(step):
                return n
        raise KeyError(step)

    def __str__(self) -> str:
        w = max([len(s) for s, _ in self.steps] + [24])
        lines = [f"manifest: {self.manifest_path}", f"  {'step':<{w}} {'count':>10}"]
        lines += [f"  {s:<{w}} {n:>10,}" for s, n in self.steps]
        lines += ["", f"  {'split':<8} {'subjects':>9} {'pairs':>9}"]
        lines += [f"  {s:<8} {a:>9,} {b:>9,}" for s, (a, b) in self.splits.items()]
        if self.labels:
            lines += ["", f"  {'label':<18} {'positive':>9} {'negative':>9} {'unknown':>9} "
                          f"{'prevalence':>11} {'unknown %':>10}"]
            for name, st in self.labels.items():
                lines.append(f"  {name:<18} {int(st['positive']):>9,} {int(st['negative']):>9,} "
                             f"{int(st['unknown']):>9,} {st['prevalence']:>11.3f} {100 * st['unknown_fraction']:>9.1f}%")
            if all(f"prevalence_{s}" in st for st in self.labels.values() for s in SPLITS):
                cells = {name: [f"{st[f'prevalence_{s}']:.3f} ({int(st[f'positive_{s}']):,}/{int(st[f'known_{s}']):,})"
                                for s in SPLITS] for name, st in self.labels.items()}
                cw = max(len(c) for row in cells.values() for c in row) + 2
                lines += ["", "  prevalence by split (positive / known pairs)",
                          f"  {'label':<18} " + "".join(f"{s:>{cw}}" for s in SPLITS)]
                lines += [f"  {name:<18} " + "".join(f"{c:>{cw}}" for c in row) for name, row in cells.items()]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def describe(df: pd.DataFrame) -> tuple[dict[str, tuple[int, int]], dict[str, dict[str, float]]]:
    """Per-split (subjects, pairs), and per label its counts over all pairs and in each split.

    A label's dict holds ``positive, negative, unknown, prevalence`` (among known) and
    ``unknown_fraction`` over all pairs, and for each split ``s``: ``positive_s``, ``known_s``,
    ``prevalence_s`` (pairs) and ``positive_subjects_s`` (subjects with a positive pair).
    """
    splits = {s: (int(df.loc[df["split"] == s, "subject_id"].nunique()), int((df["split"] == s).sum()))
              for s in SPLITS}
    labels: dict[str, dict[str, float]] = {}
    for c in label_columns(df):
        pos, neg = int((df[c] == 1.0).sum()), int((df[c] == 0.0).sum())
        unk = int(df[c].isna().sum())
        st: dict[str, float] = {"positive": pos, "negative": neg, "unknown": unk,
                                "prevalence": pos / (pos + neg) if pos + neg else float("nan"),
                                "unknown_fraction": unk / len(df) if len(df) else float("nan")}
        for s in SPLITS:
            part = df.loc[df["split"] == s]
            p, known = int((part[c] == 1.0).sum()), int(part[c].notna().sum())
            st[f"positive_{s}"], st[f"known_{s}"] = p, known
            st[f"prevalence_{s}"] = p / known if known else float("nan")
            st[f"positive_subjects_{s}"] = int(part.loc[part[c] == 1.0, "subject_id"].nunique())
        labels[c] = st
    return splits, labels
