"""CheXpert values -> manifest labels: every (uncertain, blank) policy on a hand-written table, the
before/after counts, reading the CheXpert CSV, and the policies a manifest records."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from xmodal.data.chexpert import (BLANK_POLICIES, LABEL_POLICIES_KEY, UNCERTAIN_POLICIES, apply_label_policies,
                                  check_policies, count_labels, label_policies, policies_text, read_chexpert)
from xmodal.data.manifest import load_manifest, save_manifest
from xmodal.errors import ConfigError, ManifestError

from test_manifest import make_manifest  # pytest (rootdir import mode) puts tests/data on sys.path

NAN = np.nan
# One row per case: positive, negative, uncertain, blank with No Finding = 1, blank otherwise, no CheXpert row
VALUES = pd.DataFrame({"Cardiomegaly": [1, 0, -1, NAN, NAN, NAN], "No Finding": [NAN, NAN, NAN, 1, NAN, NAN]})
HAS_ROW = np.array([True, True, True, True, True, False])
UNCERTAIN = {"zeros": 0, "ones": 1, "ignore": NAN}  # what -1 becomes
BLANK = {"nan": [NAN, NAN], "negative": [0, 0], "negative_if_no_finding": [0, NAN]}  # the two blank rows


@pytest.mark.parametrize("blank", BLANK_POLICIES)
@pytest.mark.parametrize("uncertain", list(UNCERTAIN_POLICIES))
def test_every_policy_pair_on_a_hand_table(uncertain, blank):
    out = apply_label_policies(VALUES, ["Cardiomegaly"], HAS_ROW, uncertain=uncertain, blank=blank)
    assert list(out.columns) == ["cardiomegaly"]
    np.testing.assert_array_equal(out["cardiomegaly"], [1, 0, UNCERTAIN[uncertain], *BLANK[blank], NAN])


def test_counts_before_and_after():
    out = apply_label_policies(VALUES, ["Cardiomegaly"], HAS_ROW, uncertain="ones", blank="negative_if_no_finding")
    counts = count_labels(VALUES, ["Cardiomegaly"], HAS_ROW, out)
    assert counts.index.name == "label"
    assert counts.loc["cardiomegaly"].to_dict() == {  # a no-row study is not counted as blank
        "positive": 1, "negative": 1, "uncertain": 1, "blank": 2, "no_row": 1,
        "out_positive": 2, "out_negative": 2, "out_nan": 2}


def test_policy_checks_and_text():
    check_policies("ignore", "negative")
    with pytest.raises(ConfigError, match=r"^uncertain='maybe' is not one of zeros, ones, ignore$"):
        check_policies("maybe", "nan")
    with pytest.raises(ConfigError, match=r"^blank='zero' is not one of nan, negative, negative_if_no_finding$"):
        apply_label_policies(VALUES, ["Cardiomegaly"], HAS_ROW, uncertain="zeros", blank="zero")
    assert policies_text({"uncertain": "zeros", "blank": "nan"}) == "uncertain=zeros (-1 -> 0), blank=nan (blank -> NaN)"
    assert policies_text({"uncertain": "ignore", "blank": "negative_if_no_finding"}) == \
        "uncertain=ignore (-1 -> NaN), blank=negative_if_no_finding (blank -> 0 where No Finding = 1, else NaN)"


def write_chexpert(root, rows, columns=("Cardiomegaly", "Edema", "No Finding")):
    root.mkdir(exist_ok=True)
    pd.DataFrame(rows, columns=["subject_id", "study_id", *columns]).to_csv(
        root / "mimic-cxr-2.0.0-chexpert.csv.gz", index=False)  # .gz as PhysioNet ships it
    return root


def test_read_chexpert_keeps_ids_as_text_and_the_first_row_per_study(tmp_path):
    root = write_chexpert(tmp_path, [("01", "50000001", -1, None, None), ("01", "50000001", 1, 1, None),
                                     ("02", "50000002", None, None, 1)])
    got = read_chexpert(root, ["Cardiomegaly", "Edema"], "zeros", "negative_if_no_finding")
    assert list(got.columns) == ["subject_id", "study_id", "cardiomegaly", "edema"]
    assert got["subject_id"].tolist() == ["01", "02"]  # leading zero kept; duplicate study dropped
    np.testing.assert_array_equal(got[["cardiomegaly", "edema"]], [[0, NAN], [0, 0]])


def test_read_chexpert_errors_name_the_file_and_column(tmp_path):
    root = write_chexpert(tmp_path / "a", [("01", "50000001", 2, None, None)])
    with pytest.raises(ManifestError, match=r"chexpert\.csv\.gz: column Cardiomegaly has 1 value\(s\) outside"):
        read_chexpert(root, ["Cardiomegaly"], "zeros")
    root = write_chexpert(tmp_path / "b", [("01", "50000001", 1)], columns=("Cardiomegaly",))
    with pytest.raises(ManifestError, match=r"missing column\(s\) No Finding \(No Finding: --blank "
                                            r"negative_if_no_finding needs it\); found subject_id"):
        read_chexpert(root, ["Cardiomegaly"], "zeros", "negative_if_no_finding")
    with pytest.raises(ManifestError, match=r"mimic-cxr-2\.0\.0-chexpert\.csv: not found"):
        read_chexpert(tmp_path / "c", ["Cardiomegaly"], "zeros")


def test_label_policies_round_trip_and_none_for_manifests_built_otherwise(tmp_path):
    policies = {"uncertain": "ones", "blank": "negative"}
    save_manifest(make_manifest(tmp_path), tmp_path / "m.parquet", metadata={LABEL_POLICIES_KEY: json.dumps(policies)})
    assert label_policies(tmp_path / "m.parquet") == policies
    save_manifest(load_manifest(tmp_path / "m.parquet"), tmp_path / "copy.parquet")  # e.g. a CSV cohort's writer
    assert label_policies(tmp_path / "copy.parquet") is None
