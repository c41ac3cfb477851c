"""Subject-level splits: the plain hash split, iterative stratification over labels, and their checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xmodal.data import splits as sp
from xmodal.data.splits import assign_splits
from xmodal.errors import ConfigError, ManifestError


# ---------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------


def test_splits_are_deterministic_by_subject_and_seed():
    ids = [f"{10_000_000 + i}" for i in range(2000)]
    a, b = assign_splits(ids, seed=3), assign_splits(ids, seed=3)
    np.testing.assert_array_equal(a, b)
    assert set(a) == {"train", "val", "test"}
    other = assign_splits(ids, seed=4)
    assert 0.2 < np.mean(a != other) < 0.5  # a new seed reshuffles (expected 1 - 0.66 = 0.34)
    # each subject's split is sha256("<seed>:<id>") mapped to [0, 1): check one by hand
    import hashlib

    u = int.from_bytes(hashlib.sha256(f"3:{ids[0]}".encode()).digest()[:8], "big") / 2**64
    assert a[0] == ("train" if u < 0.8 else "val" if u < 0.9 else "test")


def test_without_labels_a_subject_split_does_not_depend_on_other_subjects():
    ids = [f"subj{i}" for i in range(500)]
    full = dict(zip(ids, assign_splits(ids, seed=1)))
    rng = np.random.default_rng(0)
    subset = list(rng.choice(ids, 50, replace=False))
    part = assign_splits(subset + [f"new{i}" for i in range(300)], seed=1)[:50]
    assert [full[s] for s in subset] == list(part)


def test_every_row_of_a_subject_gets_the_same_split():
    ids = ["a", "b", "a", "c", "b", "a", 7, "7"]  # 7 and "7" are the same subject id
    s = assign_splits(ids, seed=0)
    assert s[0] == s[2] == s[5] and s[1] == s[4] and s[6] == s[7]


def test_split_fractions_hold_in_expectation_and_are_validated():
    s = assign_splits(range(20_000), fractions=(0.7, 0.2, 0.1), seed=0)
    assert abs(np.mean(s == "train") - 0.7) < 0.015 and abs(np.mean(s == "val") - 0.2) < 0.015
    assert set(assign_splits(range(100), fractions=(1.0, 0.0, 0.0))) == {"train"}
    for bad in ((0.8, 0.1), (0.8, 0.3, 0.1), (1.2, -0.1, -0.1)):
        with pytest.raises(ConfigError, match="split fractions"):
            assign_splits(["a"], fractions=bad)


# ---------------------------------------------------------------------------------------------
# Stratified splits
# ---------------------------------------------------------------------------------------------

LABELS = ["mi", "cardiomyopathy", "af", "hf"]


def rare_label_cohort(seed: int = 0, n: int = 500, prevalence=(0.05, 0.08, 0.10, 0.12)):
    """``(subject_ids, labels)`` of ``n`` subjects with 1-3 rows each; subject prevalences 5-12 %.

    A positive subject has some negative or unknown rows too; about 10 % of rows are unknown.
    """
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(prevalence))) < prevalence).astype(float)
    rows = rng.integers(1, 4, n)
    ids = np.repeat([f"{10_000_000 + i}" for i in range(n)], rows)
    lab = np.repeat(y, rows, axis=0)
    lab[rng.random(lab.shape) < 0.3] = 0.0
    lab[rng.random(lab.shape) < 0.1] = np.nan
    return list(ids), pd.DataFrame(lab, columns=LABELS)


def per_subject(ids, split) -> pd.Series:
    s = pd.Series(split, index=ids).groupby(level=0, sort=False)
    assert (s.nunique() == 1).all()  # no subject in two splits
    return s.first()


def single_class_splits(ids, labels, split) -> list[tuple[str, str]]:
    """(label, split) pairs where a label with >= 10 positive subjects misses a class in val or test."""
    subj, where = sp.subject_labels(ids, labels), per_subject(ids, split)
    return [(c, s) for c in subj for s in ("val", "test")
            if (subj[c] == 1).sum() >= 10 and not {0.0, 1.0} <= set(subj[c][where.reindex(subj.index) == s])]


def test_subject_labels_any_positive_known_negative_unknown_ignored():
    ids = ["a", "a", "b", "b", "c", "c", 7, "7"]
    lab = pd.DataFrame({"mi": [0, 1, 0, np.nan, np.nan, np.nan, 1, np.nan]})
    out = sp.subject_labels(ids, lab)
    assert out.index.tolist() == ["a", "b", "c", "7"]
    np.testing.assert_array_equal(out["mi"], [1.0, 0.0, np.nan, 1.0])


def test_stratified_splits_are_deterministic_exact_sized_and_row_order_free():
    ids, lab = rare_label_cohort()
    a, b = assign_splits(ids, seed=3, labels=lab), assign_splits(ids, seed=3, labels=lab)
    np.testing.assert_array_equal(a, b)
    subj = per_subject(ids, a)
    assert subj.value_counts().to_dict() == {"train": 400, "val": 50, "test": 50}  # exactly 500 * fractions
    perm = np.random.default_rng(1).permutation(len(ids))
    shuffled = assign_splits([ids[i] for i in perm], seed=3, labels=lab.iloc[perm])
    assert per_subject([ids[i] for i in perm], shuffled).reindex(subj.index).equals(subj)
    other = per_subject(ids, assign_splits(ids, seed=4, labels=lab)).reindex(subj.index)
    assert 0.2 < np.mean(subj != other) < 0.5  # a new seed reshuffles
    sizes = per_subject(ids, assign_splits(ids, fractions=(0.7, 0.2, 0.1), seed=0, labels=lab)).value_counts()
    assert sizes.to_dict() == {"train": 350, "val": 100, "test": 50}


def test_stratified_splits_keep_both_classes_where_the_hash_split_does_not():
    ids, lab = rare_label_cohort()
    subj = sp.subject_labels(ids, lab)
    assert ((subj == 1).sum() >= 10).all()  # every label is guaranteed (27-57 positive subjects)
    hashed = [single_class_splits(ids, lab, assign_splits(ids, seed=s)) for s in range(20)]
    assert any(hashed)  # the plain hash split leaves val or test without a positive for some seed
    for seed in range(20):
        split = assign_splits(ids, seed=seed, labels=lab)
        assert single_class_splits(ids, lab, split) == [], seed
        where = per_subject(ids, split).reindex(subj.index)
        for c in LABELS:  # positives per split follow the fractions to within one subject
            n_pos = (subj[c] == 1).sum()
            for s, f in zip(sp.SPLITS, (0.8, 0.1, 0.1)):
                assert abs(((subj[c] == 1) & (where == s)).sum() - f * n_pos) <= 1, (seed, c, s)


def test_rare_labels_are_stratified_without_error():
    ids = [f"s{i}" for i in range(200)]
    lab = pd.DataFrame({"rare": [1.0] * 4 + [0.0] * 196, "always": [1.0] * 9 + [np.nan] * 191})
    split = assign_splits(ids, seed=0, labels=lab)
    assert sorted(split[:4])[1:] == ["train"] * 3 and split[:4].tolist().count("train") == 3  # 3.2 / 0.4 / 0.4
    assert (split[4:9] == "train").sum() >= 3  # 9 positive subjects, no negative: below the guarantee, no error
    assert set(assign_splits(ids, fractions=(0.9, 0.1, 0.0), seed=0, labels=lab)) == {"train", "val"}


def test_impossible_stratification_names_the_label_and_counts():
    ids = [f"s{i}" for i in range(100)]
    lab = pd.DataFrame({"mi": [1.0] * 10 + [0.0] * 90, "hf": [1.0] * 98 + [0.0, np.nan]})
    with pytest.raises(ManifestError, match=r"cannot stratify label 'hf' \(98 positive / 1 negative subjects\): "
                                            r"the (val|test) split \(10 of 100 subjects, fraction 0.1\) gets no "
                                            r"negative subject"):
        assign_splits(ids, seed=0, labels=lab)
    with pytest.raises(ManifestError, match=r"label 'mi' \(10 positive / 90 negative subjects\): the val split "
                                            r"\(1 of 100 subjects, fraction 0.005\) gets no (positive|negative)"):
        assign_splits(ids, fractions=(0.99, 0.005, 0.005), seed=0, labels=lab[["mi"]])
    assign_splits(ids, fractions=(0.9, 0.1, 0.0), seed=0, labels=lab[["mi"]])  # an empty split needs nothing


def test_missing_classes_are_filled_by_swaps_that_keep_sizes():
    classes = np.zeros((40, 4), bool)  # (subjects, classes): a+, b+, a-, b-
    classes[:12, 0] = classes[12:, 2] = True
    classes[::2, 1] = classes[1::2, 3] = True
    split = np.array([0] * 30 + [1] * 5 + [2] * 5)  # every a+ subject in train
    before = np.bincount(split)
    assert sp._ensure_classes(split, classes, np.ones(4, bool), [0, 1, 2]) is None
    np.testing.assert_array_equal(np.bincount(split), before)
    for j in range(3):
        assert classes[split == j].any(0).all(), j
    lone = classes.copy()
    lone[:, 0], lone[:, 2] = True, False  # class a- is empty: no swap can fill it
    assert sp._ensure_classes(split.copy(), lone, np.ones(4, bool), [0, 1, 2]) == (0, 2)


def test_stratification_labels_are_checked():
    with pytest.raises(ManifestError, match=r"labels have 2 row\(s\) but subject_ids has 3"):
        assign_splits(["a", "b", "c"], labels=pd.DataFrame({"mi": [1.0, 0.0]}))
    with pytest.raises(ManifestError, match=r"label column mi has 1 value\(s\) outside \{0, 1, NaN\} \(found 2\)"):
        assign_splits(["a", "b"], labels={"mi": [1, 2]})
    ids = [f"s{i}" for i in range(50)]
    np.testing.assert_array_equal(assign_splits(ids, seed=2, labels=pd.DataFrame(index=range(50))),
                                  assign_splits(ids, seed=2))  # no label columns: the hash split
