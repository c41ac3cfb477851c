"""Manifest schema, build reports, leakage refusal, label values and local/URI Parquet round trips."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.fs as pafs
import pytest

from xmodal.data import manifest as mf
from xmodal.data.manifest import (check_manifest, check_no_leakage, label_columns, load_manifest, manifest_labels,
                                  relativize_paths, resolve_paths, save_manifest, validate_manifest)
from xmodal.data.splits import assign_splits
from xmodal.errors import ManifestError

from test_splits import rare_label_cohort  # pytest (rootdir import mode) puts tests/data on sys.path


def make_manifest(root: Path, n: int = 6, labels: dict | None = None) -> pd.DataFrame:
    """A valid CXR manifest of ``n`` pairs (one per subject) with absolute paths under ``root``."""
    subjects = [f"s{i}" for i in range(n)]
    df = pd.DataFrame({
        "pair_id": [f"p{i}" for i in range(n)],
        "subject_id": subjects,
        "ecg_path": [str(root / "ecg" / f"{i}.hea") for i in range(n)],
        "image_path": [str(root / "cxr" / f"{i}.dcm") for i in range(n)],
        "image_kind": "cxr",
        "split": assign_splits(subjects, seed=0),
        "ecg_time": pd.to_datetime([f"2150-01-0{1 + i % 9} 10:00" for i in range(n)]),
        "image_time": pd.NaT,
    })
    for name, values in (labels or {"cardiomegaly": [1.0, 0.0, np.nan, 1.0, 0.0, 0.0][:n]}).items():
        df[name] = values
    return df


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def test_valid_manifest_has_no_problems(tmp_path):
    df = make_manifest(tmp_path)
    assert validate_manifest(df) == []
    assert label_columns(df) == ["cardiomegaly"]


def test_every_problem_is_listed_in_one_error(tmp_path):
    df = make_manifest(tmp_path)
    df = df.drop(columns="image_time")
    df.loc[1, "split"] = "holdout"
    df.loc[2, "image_kind"] = "ct"
    df.loc[3, "pair_id"] = "p0"
    df.loc[4, "cardiomegaly"] = 2.0
    df["Pleural Effusion"] = 0.0
    df.loc[5, "ecg_path"] = ""
    with pytest.raises(ManifestError) as e:
        check_manifest(df, source="cohort/manifest.parquet")
    msg = str(e.value)
    assert msg.startswith("cohort/manifest.parquet: invalid manifest (7 problem(s))")
    for expected in ("missing column(s) image_time", "column split has 1 value(s) not in train, val, test",
                     "'holdout'", "column image_kind has 1 value(s)", "'ct'", "1 duplicated pair_id value(s)",
                     "label column cardiomegaly has 1 value(s) outside {0, 1, NaN} (found 2.0): pair_id=p4",
                     "'Pleural Effusion' must be snake_case (e.g. 'pleural_effusion')",
                     "column ecg_path has 1 empty value(s): pair_id=p5"):
        assert expected in msg, expected


def test_wrong_dtypes_are_named(tmp_path):
    df = make_manifest(tmp_path)
    df["subject_id"] = np.arange(len(df))
    df["ecg_time"] = "yesterday"
    df["cardiomegaly"] = ["yes"] * len(df)
    problems = validate_manifest(df)
    assert any(p.startswith("column subject_id must hold strings") for p in problems)
    assert any(p.startswith("column ecg_time must be a tz-naive timestamp") for p in problems)
    assert any(p.startswith("label column cardiomegaly must be float") for p in problems)


def test_examples_are_capped_and_name_pair_ids_not_subjects(tmp_path):
    df = make_manifest(tmp_path, n=6, labels={"edema": [0.5] * 6})
    (problem,) = validate_manifest(df)
    assert "pair_id=p0, p1, p2 (+3 more)" in problem
    assert "s0" not in problem


# ---------------------------------------------------------------------------------------------
# Build reports
# ---------------------------------------------------------------------------------------------


def test_report_shows_prevalence_per_split(tmp_path):
    ids, lab = rare_label_cohort(n=200)
    df = pd.DataFrame({"subject_id": ids, "split": assign_splits(ids, seed=0, labels=lab)})
    df = pd.concat([df, lab], axis=1)
    report = mf.BuildReport(tmp_path / "m.parquet", steps=[("pairs", len(df))])
    report.splits, report.labels = mf.describe(df)
    st = report.labels["hf"]
    assert {"positive", "negative", "unknown", "prevalence", "unknown_fraction"} <= set(st)
    val = df[df["split"] == "val"]
    assert st["positive_val"] == (val["hf"] == 1).sum() and st["known_val"] == val["hf"].notna().sum()
    assert st["prevalence_val"] == pytest.approx(st["positive_val"] / st["known_val"])
    assert st["positive_subjects_val"] == val.loc[val["hf"] == 1, "subject_id"].nunique()
    text = str(report)
    assert "prevalence by split (positive / known pairs)" in text
    row = next(line for line in text.splitlines() if line.split()[:1] == ["hf"] and "/" in line)
    for s in mf.SPLITS:
        assert f"{st[f'prevalence_{s}']:.3f} ({int(st[f'positive_{s}'])}/{int(st[f'known_{s}'])})" in row


# ---------------------------------------------------------------------------------------------
# Leakage
# ---------------------------------------------------------------------------------------------


def test_leakage_check_refuses_a_subject_in_two_splits(tmp_path):
    df = make_manifest(tmp_path)
    check_no_leakage(df)
    leaky = pd.concat([df, df.iloc[[0]].assign(pair_id="p0-bis", split="test" if df.split[0] != "test" else "val")])
    with pytest.raises(ManifestError, match=r"1 subject\(s\) appear in more than one split: pair_id=p0, p0-bis"):
        check_no_leakage(leaky)
    assert any("leakage" in p for p in validate_manifest(leaky))
    with pytest.raises(ManifestError, match="leakage"):
        save_manifest(leaky, tmp_path / "m.parquet")
    assert not (tmp_path / "m.parquet").exists()
    with pytest.raises(ManifestError, match="needs subject_id and split"):
        check_no_leakage(df.drop(columns="split"))


# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------


def test_labels_are_float_one_zero_nan(tmp_path):
    df = make_manifest(tmp_path, labels={"mi": [1, 0, 0, 1, 0, 1], "af": [True, False] * 3,
                                         "hf": [1.0, np.nan, 0.0, np.nan, 1.0, 0.0]})
    save_manifest(df, tmp_path / "m.parquet")
    back = load_manifest(tmp_path / "m.parquet")
    assert label_columns(back) == ["mi", "af", "hf"] == manifest_labels(tmp_path / "m.parquet")
    for c in ("mi", "af", "hf"):
        assert back[c].dtype == np.float64
    assert back["mi"].tolist() == [1.0, 0.0, 0.0, 1.0, 0.0, 1.0]
    assert back["af"].tolist() == [1.0, 0.0] * 3
    np.testing.assert_array_equal(back["hf"].to_numpy(), [1.0, np.nan, 0.0, np.nan, 1.0, 0.0])
    with pytest.raises(ManifestError, match=r"outside \{0, 1, NaN\}"):
        save_manifest(make_manifest(tmp_path, labels={"mi": [1, 0, -1, 1, 0, 1]}), tmp_path / "bad.parquet")


# ---------------------------------------------------------------------------------------------
# Parquet I/O
# ---------------------------------------------------------------------------------------------


def test_round_trip_stores_relative_paths_and_survives_a_move(tmp_path):
    root = tmp_path / "cohort"
    df = make_manifest(root)
    df.loc[0, "image_path"] = "/elsewhere/x.dcm"  # outside the cohort folder: kept absolute
    save_manifest(df, root / "manifest.parquet")
    raw = load_manifest(root / "manifest.parquet", resolve=False)
    assert raw["ecg_path"][1] == "ecg/1.hea" and raw["image_path"][0] == "/elsewhere/x.dcm"
    back = load_manifest(root / "manifest.parquet")
    pd.testing.assert_frame_equal(back, mf._normalise(df))
    shutil.move(root, tmp_path / "moved")
    moved = load_manifest(tmp_path / "moved" / "manifest.parquet")
    assert moved["ecg_path"][1] == str(tmp_path / "moved" / "ecg" / "1.hea")


def test_file_uri_round_trip(tmp_path):
    df = make_manifest(tmp_path / "c")
    uri = (tmp_path / "c" / "manifest.parquet").as_uri()
    assert uri.startswith("file:///")
    assert save_manifest(df, uri) == uri
    assert (tmp_path / "c" / "manifest.parquet").is_file()
    assert load_manifest(uri, resolve=False)["ecg_path"][0] == "ecg/0.hea"  # relative to the folder
    back = load_manifest(uri)
    pd.testing.assert_frame_equal(back, load_manifest(tmp_path / "c" / "manifest.parquet"))
    pd.testing.assert_frame_equal(back, mf._normalise(df))
    assert manifest_labels(uri) == ["cardiomegaly"]


def test_remote_uri_round_trip_joins_paths_as_uris(tmp_path, monkeypatch):
    store = pafs._MockFileSystem()  # an in-memory object store standing in for s3://
    real_from_uri = pafs.FileSystem.from_uri

    def from_uri(uri: str):
        return (store, uri.split("://", 1)[1]) if uri.startswith("s3://") else real_from_uri(uri)

    fake = SimpleNamespace(FileSystem=SimpleNamespace(from_uri=from_uri), LocalFileSystem=pafs.LocalFileSystem,
                           FileType=pafs.FileType)
    monkeypatch.setattr(mf, "pafs", fake)  # pyarrow's types are immutable: swap the module manifest uses
    df = make_manifest(tmp_path)
    df["ecg_path"] = [f"s3://bucket/cohort/ecg/{i}.hea" for i in range(len(df))]
    df.loc[0, "image_path"] = "s3://other/x.dcm"
    uri = "s3://bucket/cohort/manifest.parquet"
    assert save_manifest(df, uri) == uri
    assert store.get_file_info("bucket/cohort/manifest.parquet").type == pafs.FileType.File
    raw = load_manifest(uri, resolve=False)
    assert raw["ecg_path"][2] == "ecg/2.hea"
    assert raw["image_path"][0] == "s3://other/x.dcm" and raw["image_path"][1] == str(tmp_path / "cxr/1.dcm")
    back = load_manifest(uri)
    assert back["ecg_path"].tolist() == df["ecg_path"].tolist()
    assert manifest_labels(uri) == ["cardiomegaly"]
    with pytest.raises(ManifestError, match="manifest not found"):
        load_manifest("s3://bucket/nothing.parquet")


def test_path_helpers_on_uris_need_no_filesystem():
    df = pd.DataFrame({"ecg_path": ["a/b.hea", "../up.hea", "/abs/c.hea", "gs://x/y.hea"],
                       "image_path": ["i.dcm"] * 4})
    out = resolve_paths(df, "gs://bucket/cohorts/one/manifest.parquet")
    assert out["ecg_path"].tolist() == ["gs://bucket/cohorts/one/a/b.hea", "gs://bucket/cohorts/up.hea",
                                        "/abs/c.hea", "gs://x/y.hea"]
    back = relativize_paths(out, "gs://bucket/cohorts/one/manifest.parquet")
    assert back["ecg_path"].tolist() == ["a/b.hea", "gs://bucket/cohorts/up.hea", "/abs/c.hea", "gs://x/y.hea"]
    local = resolve_paths(df, "file:///data/my%20cohort/manifest.parquet")
    assert local["ecg_path"][0] == "/data/my cohort/a/b.hea"


def test_missing_or_corrupt_manifest_is_named(tmp_path):
    with pytest.raises(ManifestError, match=r"nothing\.parquet: manifest not found"):
        load_manifest(tmp_path / "nothing.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_text("pair_id,subject_id\n")
    with pytest.raises(ManifestError, match="bad.parquet: not a Parquet manifest"):
        load_manifest(bad)
    with pytest.raises(ManifestError, match="cannot open this URI"):
        load_manifest("nosuchscheme://x/manifest.parquet")


def test_save_refuses_an_invalid_table_and_writes_nothing(tmp_path):
    df = make_manifest(tmp_path).drop(columns="subject_id")
    with pytest.raises(ManifestError, match="missing column"):
        save_manifest(df, tmp_path / "m.parquet")
    assert list(tmp_path.iterdir()) == []
