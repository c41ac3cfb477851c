"""Generic CSV-of-pairs builder: defaults, UK-Biobank-style column_map, and errors that name columns and lines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xmodal.data.csv_cohort import build_csv_manifest
from xmodal.data.manifest import check_no_leakage, load_manifest
from xmodal.data.splits import assign_splits
from xmodal.errors import ConfigError, ManifestError

UKB_MAP = {"subject_id": "eid", "image_path": "cmr_path", "image_time": "cmr_time"}
CMR_LABELS = ["mi", "cardiomyopathy", "af", "hf"]


def touch_pair(root: Path, ecg: str, image: str, *, cine: bool = False) -> None:
    """Create ``<ecg>.hea`` and the image (a file, or a folder holding one frame)."""
    hea = root / (ecg if ecg.endswith(".hea") else f"{ecg}.hea")
    hea.parent.mkdir(parents=True, exist_ok=True)
    hea.touch()
    img = root / image
    if cine:
        img.mkdir(parents=True, exist_ok=True)
        (img / "frame1.dcm").touch()
    else:
        img.parent.mkdir(parents=True, exist_ok=True)
        img.touch()


@pytest.fixture
def ukb_csv(tmp_path) -> Path:
    """A UK Biobank style CSV of 4 pairs (subject 1000394 has two visits) with its files."""
    rows = [
        ("1000394", "ecg/1000394_20205_2_0", "cmr/1000394_20209_2_0", "2016-05-11 09:12:00", "2016-05-11 10:02:31", 0, 0, 0, 0),
        ("1000394", "ecg/1000394_20205_3_0.hea", "cmr/1000394_20209_3_0", "2019-01-02 09:00:00", "2019-01-02 10:00:00", 1, 0, 0, 1),
        ("1000417", "ecg/1000417_20205_2_0.dat", "cmr/1000417_20209_2_0", "", "2017-03-01 12:00:00", 0, 1, "", 0),
        ("1000502", "ecg/1000502_20205_2_0", "cmr/1000502_20209_2_0", "2015-07-21 08:00:00", "", 0, 0, 1, ""),
    ]
    cols = ["eid", "ecg_path", "cmr_path", "ecg_time", "cmr_time", *CMR_LABELS]
    pd.DataFrame(rows, columns=cols).to_csv(tmp_path / "pairs.csv", index=False)
    for r in rows:
        touch_pair(tmp_path, r[1].rsplit(".", 1)[0] if r[1].endswith((".hea", ".dat")) else r[1], r[2], cine=True)
    return tmp_path / "pairs.csv"


def test_ukb_csv_with_column_map(ukb_csv, tmp_path):
    report = build_csv_manifest(ukb_csv, tmp_path / "out/manifest.parquet", image_kind="cine",
                                label_columns=CMR_LABELS, column_map=UKB_MAP, split_seed=2)
    df = load_manifest(tmp_path / "out/manifest.parquet")
    assert report.steps == [("CSV rows", 4), ("rows with both files on disk", 4), ("pairs", 4)]
    assert df["subject_id"].tolist() == ["1000394", "1000394", "1000417", "1000502"]
    # every ECG path becomes its .hea (with or without an extension in the CSV), absolute
    assert df["ecg_path"].tolist() == [str(tmp_path / f"ecg/{n}.hea") for n in
                                       ("1000394_20205_2_0", "1000394_20205_3_0", "1000417_20205_2_0",
                                        "1000502_20205_2_0")]
    assert df["image_path"][0] == str(tmp_path / "cmr/1000394_20209_2_0") and (df["image_kind"] == "cine").all()
    assert df["ecg_time"][0] == pd.Timestamp("2016-05-11 09:12:00") and pd.isna(df["ecg_time"][2])
    assert df["image_time"][1] == pd.Timestamp("2019-01-02 10:00:00") and pd.isna(df["image_time"][3])
    np.testing.assert_array_equal(df["af"], [0.0, 0.0, np.nan, 1.0])
    np.testing.assert_array_equal(df["hf"], [0.0, 1.0, 0.0, np.nan])
    assert df["pair_id"].is_unique and df["pair_id"][0].startswith("1000394-")
    np.testing.assert_array_equal(df["split"], assign_splits(df["subject_id"], seed=2, labels=df[CMR_LABELS]))
    check_no_leakage(df)


def test_defaults_label_mapping_and_pair_id(tmp_path):
    pd.DataFrame({"pair_id": ["a", "b"], "subject_id": ["s1", "s2"], "ecg_path": ["e1", "e2"],
                  "image_path": ["i1.dcm", "i2.dcm"], "Pleural Effusion": [1, 0], "CM": ["", "1"]}).to_csv(
        tmp_path / "pairs.csv", index=False)
    for e, i in (("e1", "i1.dcm"), ("e2", "i2.dcm")):
        touch_pair(tmp_path, e, i)
    build_csv_manifest(tmp_path / "pairs.csv", tmp_path / "m.parquet", image_kind="cxr",
                       label_columns={"Pleural Effusion": "pleural_effusion", "CM": "cardiomegaly"})
    df = load_manifest(tmp_path / "m.parquet")
    assert df["pair_id"].tolist() == ["a", "b"]
    assert list(df.columns[-2:]) == ["pleural_effusion", "cardiomegaly"]
    np.testing.assert_array_equal(df["cardiomegaly"], [np.nan, 1.0])
    assert df["ecg_time"].isna().all() and df["image_time"].isna().all()
    build_csv_manifest(tmp_path / "pairs.csv", tmp_path / "n.parquet", image_kind="cxr",
                       label_columns=["Pleural Effusion"])  # a list: names made snake_case
    assert "pleural_effusion" in load_manifest(tmp_path / "n.parquet").columns


def test_missing_column_error_names_the_column(ukb_csv, tmp_path):
    with pytest.raises(ManifestError) as e:  # the UK Biobank names, without the map
        build_csv_manifest(ukb_csv, tmp_path / "m.parquet", image_kind="cine", label_columns=CMR_LABELS)
    msg = str(e.value)
    assert "missing column(s) subject_id, image_path" in msg and "column_map" in msg
    with pytest.raises(ManifestError, match=r"missing column\(s\) lvef;"):
        build_csv_manifest(ukb_csv, tmp_path / "m.parquet", image_kind="cine", label_columns=["mi", "lvef"],
                           column_map=UKB_MAP)
    with pytest.raises(ManifestError, match=r"missing column\(s\) participant"):
        build_csv_manifest(ukb_csv, tmp_path / "m.parquet", image_kind="cine", label_columns=CMR_LABELS,
                           column_map={**UKB_MAP, "subject_id": "participant"})


def test_bad_values_are_listed_with_their_csv_lines(ukb_csv, tmp_path):
    raw = pd.read_csv(ukb_csv, dtype=str, keep_default_na=False)
    raw.loc[1, "mi"] = "yes"
    raw.loc[3, "mi"] = "2"
    raw.loc[2, "cmr_time"] = "not a time"
    raw.loc[0, "eid"] = ""
    raw.to_csv(ukb_csv, index=False)
    with pytest.raises(ManifestError) as e:
        build_csv_manifest(ukb_csv, tmp_path / "m.parquet", image_kind="cine", label_columns=CMR_LABELS,
                           column_map=UKB_MAP)
    msg = str(e.value)
    assert "3 problem(s)" in msg
    assert "column eid is empty on line(s) 2" in msg
    assert "column cmr_time has unreadable time(s) on line(s) 4" in msg
    assert "label column mi has value(s) other than 1, 0, blank on line(s) 3, 5" in msg


def test_missing_files_error_or_drop(ukb_csv, tmp_path):
    (tmp_path / "ecg/1000417_20205_2_0.hea").unlink()
    for f in (tmp_path / "cmr/1000502_20209_2_0").iterdir():  # an empty cine folder counts as missing
        f.unlink()
    kwargs = dict(image_kind="cine", label_columns=CMR_LABELS, column_map=UKB_MAP)
    with pytest.raises(ManifestError, match=r"2 row\(s\) name an ECG header or image that does not exist: "
                                            r"line\(s\) 4, 5 \(pass missing='drop'"):
        build_csv_manifest(ukb_csv, tmp_path / "m.parquet", **kwargs)
    report = build_csv_manifest(ukb_csv, tmp_path / "m.parquet", missing="drop", **kwargs)
    assert report.count("rows with both files") == 2 and report.pairs == 2
    report = build_csv_manifest(ukb_csv, tmp_path / "n.parquet", check_files=False, **kwargs)
    assert report.pairs == 4


def test_bad_arguments_are_config_errors(ukb_csv, tmp_path):
    with pytest.raises(ConfigError, match="image_kind='mri'"):
        build_csv_manifest(ukb_csv, tmp_path / "m.parquet", image_kind="mri", label_columns=CMR_LABELS)
    with pytest.raises(ConfigError, match="missing='skip'"):
        build_csv_manifest(ukb_csv, tmp_path / "m.parquet", image_kind="cine", label_columns=CMR_LABELS,
                           missing="skip")
    with pytest.raises(ConfigError, match="column_map key.* patient_id"):
        build_csv_manifest(ukb_csv, tmp_path / "m.parquet", image_kind="cine", label_columns=CMR_LABELS,
                           column_map={"patient_id": "eid"})
    with pytest.raises(ManifestError, match="CSV of pairs not found"):
        build_csv_manifest(tmp_path / "none.csv", tmp_path / "m.parquet", image_kind="cine", label_columns=[])
