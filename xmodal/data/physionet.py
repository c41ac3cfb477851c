"""Reading the CSV tables PhysioNet ships (``name.csv`` or ``name.csv.gz``) with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from xmodal.errors import ManifestError


def find_csv(root: Path, name: str) -> Path:
    """``root/name`` or ``root/name.gz``, whichever exists; :class:`ManifestError` when neither does."""
    for cand in (root / name, root / f"{name}.gz"):
        if cand.is_file():
            return cand
    raise ManifestError(f"{root / name}: not found (nor {name}.gz); point the root at the folder "
                        f"that holds {name} as PhysioNet ships it")


def read_columns(path: Path, required: Sequence[str], dtype: dict | None = None, why: str = "") -> pd.DataFrame:
    """The ``required`` columns of ``path`` (as text unless ``dtype`` says otherwise; blank -> NaN).

    A missing column raises :class:`ManifestError` naming it, the columns found and ``why`` it is needed.
    """
    try:
        header = list(pd.read_csv(path, nrows=0).columns)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as e:
        raise ManifestError(f"{path}: not a readable CSV ({e})") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise ManifestError(f"{path}: missing column(s) {', '.join(missing)}{why}; found {', '.join(header)}")
    return pd.read_csv(path, usecols=list(required), dtype=dtype or str, keep_default_na=True)
