"""Subject-level train/val/test splits, stratified over label columns when given.

:func:`assign_splits` gives every row of a subject the same split. Without labels it is a plain
hash of ``"<seed>:<subject_id>"`` (:func:`subject_unit`); with labels it is iterative stratification
(Sechidis et al. 2011) over every label's positive and negative subjects (:func:`subject_labels`),
with exact split sizes, and every label with at least :data:`GUARANTEED_POSITIVES` positive subjects
gets both classes in every non-empty split.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from xmodal.errors import ConfigError, ManifestError

SPLITS = ("train", "val", "test")
GUARANTEED_POSITIVES = 10  # a label with this many positive subjects gets both classes in every split


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    fr = tuple(float(f) for f in fractions)
    if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1.0) > 1e-6:
        raise ConfigError(f"split fractions {fractions!r} must be three non-negative numbers "
                          "(train, val, test) that sum to 1, e.g. (0.8, 0.1, 0.1)")
    return fr  # type: ignore[return-value]


def subject_unit(subject_ids: Iterable[object], seed: int = 0) -> np.ndarray:
    """A uniform number in [0, 1) per subject from SHA-256 of ``"<seed>:<subject_id>"``."""
    ids = pd.Series(list(subject_ids), dtype=object).astype(str)
    uniq = ids.unique()
    u = np.array([int.from_bytes(hashlib.sha256(f"{seed}:{s}".encode()).digest()[:8], "big")
                  for s in uniq], dtype=np.float64) / 2.0**64
    return pd.Series(u, index=uniq).reindex(ids.to_numpy()).to_numpy()


def assign_splits(subject_ids: Iterable[object], *, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                  seed: int = 0, labels: pd.DataFrame | Mapping[str, Sequence[float]] | None = None
                  ) -> np.ndarray:
    """``"train" | "val" | "test"`` per entry of ``subject_ids``; every entry of a subject gets the same split.

    Without ``labels`` (or with no label columns) each subject maps to ``u = sha256(seed:subject)``
    in [0, 1): ``u < train`` goes to train, ``u < train + val`` to val, the rest to test. A subject's
    split then depends on its id and ``seed`` alone, never on the other subjects, and split sizes
    follow ``fractions`` in expectation (binomially), not exactly.

    With ``labels`` — a DataFrame (or mapping name -> values) of label columns, one row per entry
    of ``subject_ids`` (1 positive, 0 negative, NaN unknown) — the split is stratified by subject
    over every label's positive and negative class (iterative stratification, Sechidis et al. 2011,
    "On the stratification of multi-label data"). A subject is positive for a label if any of its
    rows is, negative if it has known rows and none positive, and ignored for that label if all are
    unknown. Subject counts per split follow ``fractions`` exactly (largest remainder), processing
    order and ties come from ``seed`` (``subject_unit``), and the result does not depend on the row
    order. Each subject's split now depends on the whole cohort: adding subjects can move others.
    Every label with at least ``GUARANTEED_POSITIVES`` (10) positive subjects gets positive and
    negative subjects in every split whose fraction is > 0 (subjects are swapped when the
    stratification alone misses one); where that is impossible :class:`ManifestError` names the
    label, its positive / negative subject counts and the split. Rarer labels are stratified as
    well as possible.
    """
    fr = _check_fractions(fractions)
    ids = pd.Series(list(subject_ids), dtype=object).astype(str)
    table = None if labels is None else subject_labels(ids, labels)
    if table is None or table.shape[1] == 0:
        u = subject_unit(ids, seed)
        out = np.full(len(u), "test", dtype=object)
        out[u < fr[0] + fr[1]] = "val"
        out[u < fr[0]] = "train"
        return out
    uniq = table.index.to_numpy().astype(str)
    order = np.lexsort((uniq, subject_unit(uniq, seed)))  # by unit, ties by id: row order is irrelevant
    y = table.to_numpy()[order]  # (subjects, labels)
    classes = np.concatenate([y == 1.0, y == 0.0], axis=1)  # (subjects, 2 * labels): positive, negative
    tie = np.random.default_rng(int.from_bytes(hashlib.sha256(f"{seed}:stratify".encode()).digest()[:8], "big"))
    split = _stratify(classes, fr, tie)
    pos = classes.sum(0)[: y.shape[1]]
    guarded = np.tile(pos >= GUARANTEED_POSITIVES, 2)
    missing = _ensure_classes(split, classes, guarded, [j for j in range(3) if fr[j] > 0])
    if missing is not None:
        j, c = missing
        lab = c % y.shape[1]
        raise ManifestError(
            f"cannot stratify label {table.columns[lab]!r} ({int(pos[lab])} positive / "
            f"{int(classes[:, y.shape[1] + lab].sum())} negative subjects): the {SPLITS[j]} split "
            f"({int((split == j).sum())} of {len(split)} subjects, fraction {fr[j]:g}) gets no "
            f"{'positive' if c < y.shape[1] else 'negative'} subject; a label with >= {GUARANTEED_POSITIVES} "
            "positive subjects needs both classes in every split: enlarge that split's fraction or drop the label")
    by_subject = pd.Series(np.asarray(SPLITS, dtype=object)[split], index=uniq[order])
    return by_subject.reindex(ids.to_numpy()).to_numpy()


def subject_labels(subject_ids: Iterable[object], labels: pd.DataFrame | Mapping[str, Sequence[float]]
                   ) -> pd.DataFrame:
    """Per-subject labels, ``(subjects, labels)`` indexed by subject id (as str, first-seen order).

    ``labels`` holds one row per entry of ``subject_ids``. A subject is 1.0 if any of its rows is
    positive, 0.0 if it has known rows and none positive, NaN if all are unknown.
    """
    ids = pd.Series(list(subject_ids), dtype=object).astype(str)
    lab = pd.DataFrame(labels).reset_index(drop=True)
    if len(lab) != len(ids):
        raise ManifestError(f"labels have {len(lab)} row(s) but subject_ids has {len(ids)}: "
                            "pass one label row per subject id entry")
    for c in lab.columns:
        values = pd.to_numeric(lab[c], errors="coerce").astype("float64")
        bad = (values.isna() & lab[c].notna()) | (values.notna() & ~values.isin([0.0, 1.0]))
        if bad.any():
            raise ManifestError(f"label column {c} has {int(bad.sum())} value(s) outside {{0, 1, NaN}} "
                                f"(found {lab[c][bad].iloc[0]}); cannot stratify splits on it")
        lab[c] = values
    return lab.groupby(ids.to_numpy(), sort=False).max()  # max skips NaN; all-NaN stays NaN


def _split_sizes(n: int, fractions: Sequence[float]) -> np.ndarray:
    """Subjects per split, ``(3,)`` int: ``n * fractions`` rounded by largest remainder (sums to ``n``)."""
    raw = n * np.asarray(fractions, dtype=np.float64)
    sizes = np.floor(raw + 1e-9).astype(np.int64)
    rest = np.clip(raw - sizes, 0, None)
    sizes[np.argsort(-rest, kind="stable")[: n - int(sizes.sum())]] += 1
    return sizes


def _pick(score: np.ndarray, need: np.ndarray, tie: np.random.Generator) -> int:
    """The split with room (``need > 0``) and the highest ``score``, then the most room, then a seeded draw."""
    cand = np.flatnonzero(need > 0)
    cand = cand[score[cand] >= score[cand].max() - 1e-9]
    cand = cand[need[cand] >= need[cand].max() - 1e-9]
    return int(cand[0] if len(cand) == 1 else cand[tie.integers(len(cand))])


def _stratify(classes: np.ndarray, fractions: Sequence[float], tie: np.random.Generator) -> np.ndarray:
    """Iterative stratification (Sechidis et al. 2011): a split index ``(subjects,)`` in 0..2.

    ``classes`` is ``(subjects, k)`` bool, rows in processing order. The class with the fewest
    unassigned subjects goes first; each of its subjects joins the split that most lacks that class,
    then the one that most lacks subjects. Subjects in no class fill the remaining room.
    """
    n, k = classes.shape
    need = _split_sizes(n, fractions).astype(np.float64)  # (3,) subjects still wanted per split
    want = classes.sum(0)[:, None] * np.asarray(fractions)[None, :]  # (k, 3) class subjects still wanted
    split = np.full(n, -1, dtype=np.int64)
    rank = tie.permutation(k)  # ties between equally rare classes
    left = classes.copy()
    while left.any():
        counts = left.sum(0)
        live = np.flatnonzero(counts)
        c = live[np.lexsort((rank[live], counts[live]))[0]]
        rows = np.flatnonzero(left[:, c])
        for i in rows:
            j = _pick(want[c], need, tie)
            split[i] = j
            need[j] -= 1
            want[classes[i], j] -= 1
        left[rows] = False
    for i in np.flatnonzero(split < 0):
        j = _pick(need, need, tie)
        split[i] = j
        need[j] -= 1
    return split


def _ensure_classes(split: np.ndarray, classes: np.ndarray, guarded: np.ndarray, required: Sequence[int],
                    max_donors: int = 1000) -> tuple[int, int] | None:
    """Swap subjects (in place) until every ``guarded`` class has a subject in every ``required`` split.

    ``split`` is ``(subjects,)``, ``classes`` ``(subjects, k)`` bool, ``guarded`` ``(k,)`` bool. A swap
    moves one subject of the missing class in and one without it out, never emptying another guarded
    class of either split, so sizes hold and each swap fixes one gap. Returns the first ``(split,
    class)`` that no swap can fill, or None.
    """
    counts = classes.astype(np.int64)
    present = np.stack([counts[split == j].sum(0) for j in range(3)])  # (3, k)
    while True:
        gaps = [(j, c) for j in required for c in np.flatnonzero(guarded) if present[j, c] == 0]
        if not gaps:
            return None
        j, c = gaps[0]
        receivers = np.flatnonzero((split == j) & ~classes[:, c])
        donors = np.flatnonzero((split != j) & classes[:, c])
        donors = donors[np.argsort(-present[split[donors], c], kind="stable")][:max_donors]  # richest split first
        for i in donors:
            a = split[i]
            delta = counts[receivers] - counts[i]  # (receivers, k): change in split a
            lost_a = guarded & (present[a] > 0) & (present[a] + delta <= 0)
            lost_j = guarded & (present[j] > 0) & (present[j] - delta <= 0)
            ok = ~lost_j.any(1) & (~lost_a.any(1) if a in required else True)
            if ok.any():
                r = receivers[ok][np.argmin(np.abs(delta[ok]).sum(1))]  # the most similar subject
                split[i], split[r] = j, a
                present[a] += counts[r] - counts[i]
                present[j] += counts[i] - counts[r]
                break
        else:
            return j, c
