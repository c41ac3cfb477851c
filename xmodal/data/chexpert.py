"""CheXpert values (``mimic-cxr-2.0.0-chexpert.csv``: 1 / 0 / -1 / blank) -> manifest labels.

1 -> 1.0, 0 -> 0.0; -1 (uncertain) by ``uncertain``: ``"zeros"`` -> 0.0, ``"ones"`` -> 1.0,
``"ignore"`` -> NaN; blank (the report does not mention the finding) by ``blank``: ``"nan"`` -> NaN,
``"negative"`` -> 0.0, ``"negative_if_no_finding"`` -> 0.0 where the study's ``No Finding`` is 1, else
NaN. A study with no CheXpert row at all gets NaN under every policy. A manifest built this way records
both policies in its schema metadata under :data:`LABEL_POLICIES_KEY` (read back by :func:`label_policies`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from xmodal.data.manifest import manifest_metadata, snake_case
from xmodal.data.physionet import find_csv, read_columns
from xmodal.errors import ConfigError, ManifestError

CXR_CHEXPERT = "mimic-cxr-2.0.0-chexpert.csv"
CHEXPERT_LABELS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum",
                   "Fracture", "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion",
                   "Pleural Other", "Pneumonia", "Pneumothorax", "Support Devices")
NO_FINDING = "No Finding"
UNCERTAIN_POLICIES = {"zeros": 0.0, "ones": 1.0, "ignore": np.nan}
BLANK_POLICIES = ("nan", "negative", "negative_if_no_finding")
LABEL_POLICIES_KEY = "xmodal.label_policies"  # manifest schema metadata: {"uncertain": ..., "blank": ...}
_POLICY_TEXT = {"zeros": "-1 -> 0", "ones": "-1 -> 1", "ignore": "-1 -> NaN", "nan": "blank -> NaN",
                "negative": "blank -> 0", "negative_if_no_finding": "blank -> 0 where No Finding = 1, else NaN"}


def check_policies(uncertain: str, blank: str) -> None:
    """Raise :class:`ConfigError` for an unknown uncertain- or blank-label policy."""
    if uncertain not in UNCERTAIN_POLICIES:
        raise ConfigError(f"uncertain={uncertain!r} is not one of {', '.join(UNCERTAIN_POLICIES)}")
    if blank not in BLANK_POLICIES:
        raise ConfigError(f"blank={blank!r} is not one of {', '.join(BLANK_POLICIES)}")


def policies_text(policies: dict[str, str]) -> str:
    """``{"uncertain": "zeros", "blank": "nan"}`` -> ``"uncertain=zeros (-1 -> 0), blank=nan (blank -> NaN)"``."""
    return ", ".join(f"{k}={v} ({_POLICY_TEXT.get(v, '?')})" for k, v in policies.items())


def label_policies(manifest_path: str | Path) -> dict[str, str] | None:
    """The ``{"uncertain": ..., "blank": ...}`` a MIMIC manifest was built with (None: built otherwise)."""
    raw = manifest_metadata(manifest_path).get(LABEL_POLICIES_KEY)
    return None if raw is None else dict(json.loads(raw))


def chexpert_columns(labels: Sequence[str], blank: str) -> list[str]:
    """The CheXpert columns to read: the labels, and ``No Finding`` when the blank policy needs it."""
    return list(dict.fromkeys([*labels, *([NO_FINDING] if blank == "negative_if_no_finding" else [])]))


def read_chexpert_values(cxr_root: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """One row per study: subject_id, study_id and ``columns`` (CheXpert names) as 1 / 0 / -1 / NaN (blank)."""
    path = find_csv(Path(cxr_root).absolute(), CXR_CHEXPERT)
    why = " (No Finding: --blank negative_if_no_finding needs it)" if NO_FINDING in columns else ""
    df = read_columns(path, ("subject_id", "study_id", *columns),
                      dtype={"subject_id": str, "study_id": str} | {c: float for c in columns}, why=why)
    df = df.drop_duplicates(["subject_id", "study_id"], keep="first").reset_index(drop=True)
    for c in columns:
        v = df[c].to_numpy(np.float64)
        bad = ~np.isnan(v) & ~np.isin(v, (1.0, 0.0, -1.0))
        if bad.any():
            raise ManifestError(f"{path}: column {c} has {int(bad.sum())} value(s) outside 1, 0, -1, blank")
    return df


def apply_label_policies(values: pd.DataFrame, labels: Sequence[str], has_row: np.ndarray, *,
                         uncertain: str, blank: str) -> pd.DataFrame:
    """Manifest labels (snake_case columns, ``values``' index) from raw CheXpert values.

    ``values`` holds the CheXpert columns (and ``No Finding`` for ``negative_if_no_finding``);
    ``has_row`` is False where the study has no CheXpert row: NaN there whatever ``blank`` says.
    """
    check_policies(uncertain, blank)
    if blank == "negative_if_no_finding":
        fill = values[NO_FINDING].to_numpy(np.float64) == 1.0  # NaN (no row) is not 1
    else:
        fill = np.asarray(has_row, bool) & (blank == "negative")
    out = {}
    for lab in labels:
        v = values[lab].to_numpy(np.float64)
        y = v.copy()
        y[v == -1.0] = UNCERTAIN_POLICIES[uncertain]
        y[np.isnan(v) & fill] = 0.0
        out[snake_case(lab)] = y
    return pd.DataFrame(out, index=values.index)


def count_labels(values: pd.DataFrame, labels: Sequence[str], has_row: np.ndarray,
                 out: pd.DataFrame) -> pd.DataFrame:
    """Per label (snake_case index), over rows: CheXpert values before the policies and labels after.

    Columns: ``positive, negative, uncertain, blank, no_row`` (1 / 0 / -1 / blank / no CheXpert row)
    and ``out_positive, out_negative, out_nan`` (the manifest's 1.0 / 0.0 / NaN).
    """
    has_row = np.asarray(has_row, bool)
    rows = {}
    for lab in labels:
        v, y = values[lab].to_numpy(np.float64), out[snake_case(lab)].to_numpy(np.float64)
        rows[snake_case(lab)] = {
            "positive": (v == 1.0).sum(), "negative": (v == 0.0).sum(), "uncertain": (v == -1.0).sum(),
            "blank": (np.isnan(v) & has_row).sum(), "no_row": (~has_row).sum(),
            "out_positive": (y == 1.0).sum(), "out_negative": (y == 0.0).sum(), "out_nan": np.isnan(y).sum()}
    cols = ["positive", "negative", "uncertain", "blank", "no_row", "out_positive", "out_negative", "out_nan"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols).astype(np.int64).rename_axis("label")


def read_chexpert(cxr_root: str | Path, labels: Sequence[str], uncertain: str, blank: str = "nan") -> pd.DataFrame:
    """Per-study labels (subject_id, study_id, snake_case columns) with both policies applied."""
    check_policies(uncertain, blank)
    raw = read_chexpert_values(cxr_root, chexpert_columns(labels, blank))
    out = apply_label_policies(raw, labels, np.ones(len(raw), bool), uncertain=uncertain, blank=blank)
    return pd.concat([raw[["subject_id", "study_id"]], out], axis=1)
