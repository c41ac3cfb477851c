"""MIMIC-IV-ECG + MIMIC-CXR manifest builder: hand-written CSVs with known pairs and labels, and a
synthetic cohort checked against a plain sequential reference of the pairing rule."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xmodal.data.chexpert import BLANK_POLICIES, label_policies
from xmodal.data.manifest import check_no_leakage, load_manifest
from xmodal.data.mimic import build_mimic_manifest, greedy_match, main
from xmodal.data.splits import assign_splits
from xmodal.data.synthetic import ensure_demo_cohort
from xmodal.errors import ConfigError, ManifestError

LABELS = ("Cardiomegaly", "Pleural Effusion", "Edema")

# ---------------------------------------------------------------------------------------------
# Hand-written cohort: every pair below is known
# ---------------------------------------------------------------------------------------------

ECGS = [  # subject, ECG study, time ("" = unknown)
    ("10000001", "40000001", "2150-01-10 10:00:00"),  # 2 h before S1's films
    ("10000002", "40000002", "2150-02-02 09:00:00"),  # 25 h after S2's film: outside ±24 h
    ("10000003", "40000003", "2150-01-05 12:40:00"),  # between S3's two films, nearer the second
    ("10000004", "40000004", "2150-05-01 01:00:00"),  # loses to 40000006 for film a, too far for film b
    ("10000004", "40000005", "2150-05-01 12:00:00"),
    ("10000004", "40000006", "2150-05-01 00:30:00"),
    ("10000005", "40000007", "2150-06-01 12:00:00"),  # same time as a lateral (LL) film only
    ("10000008", "40000008", "2150-02-28 08:00:00"),  # exactly 24 h before S8's film: inside
    ("10000007", "40000010", ""),  # no time: unusable
]
IMAGES = [  # dicom_id, subject, study, view, time
    ("d-s1-pa", "10000001", "50000001", "PA", "2150-01-10 12:00:00"),
    ("d-s1-lat", "10000001", "50000001", "LATERAL", "2150-01-10 12:00:00"),
    ("d-s2-ap", "10000002", "50000002", "AP", "2150-02-01 08:00:00"),
    ("d-s3-a", "10000003", "50000003", "AP", "2150-01-05 12:00:00"),
    ("d-s3-b", "10000003", "50000004", "AP", "2150-01-05 13:00:00"),
    ("d-s4-a", "10000004", "50000005", "PA", "2150-05-01 00:00:00"),
    ("d-s4-b", "10000004", "50000006", "PA", "2150-05-01 10:00:00"),
    ("d-s5-ll", "10000005", "50000007", "LL", "2150-06-01 12:00:00"),
    ("d-s6-pa", "10000006", "50000008", "PA", "2150-06-01 12:00:00"),  # subject without ECGs
    ("d-s7-pa", "10000007", "50000009", "PA", "2150-07-01 09:30:15.5"),
    ("d-s8-pa", "10000008", "50000010", "PA", "2150-03-01 08:00:00"),
]
CHEXPERT = [  # subject, study, Cardiomegaly, Pleural Effusion, Edema[, No Finding] (None = blank); 50000010 has no row
    ("10000001", "50000001", -1, None, 1),
    ("10000003", "50000004", 1, -1, 0),
    ("10000004", "50000005", 0, 0, 0),
    ("10000004", "50000006", None, 1, -1),
]
DEFAULT_PAIRS = {"40000001-d-s1-pa", "40000003-d-s3-b", "40000006-d-s4-a", "40000005-d-s4-b", "40000008-d-s8-pa"}


def write_mimic(root: Path, ecgs=ECGS, images=IMAGES, chexpert=CHEXPERT) -> tuple[Path, Path]:
    """The three PhysioNet CSVs under ``root/ecg`` and ``root/cxr``; returns (ecg_root, cxr_root)."""
    ecg_root, cxr_root = root / "ecg", root / "cxr"
    ecg_root.mkdir(parents=True)
    cxr_root.mkdir(parents=True)
    pd.DataFrame([{"subject_id": s, "study_id": e, "file_name": e, "ecg_time": t,
                   "path": f"files/p{s[:4]}/p{s}/s{e}/{e}"} for s, e, t in ecgs]).to_csv(
        ecg_root / "record_list.csv", index=False)
    meta = []
    for d, s, st, view, t in images:
        when = datetime.fromisoformat(t)
        meta.append({"dicom_id": d, "subject_id": s, "study_id": st, "ViewPosition": view,
                     "StudyDate": when.strftime("%Y%m%d"), "StudyTime": when.strftime("%H%M%S.%f").rstrip("0")})
    pd.DataFrame(meta).to_csv(cxr_root / "mimic-cxr-2.0.0-metadata.csv", index=False)
    columns = ["subject_id", "study_id", *LABELS, "No Finding"][:max(len(r) for r in chexpert)]
    pd.DataFrame(chexpert, columns=columns).to_csv(
        cxr_root / "mimic-cxr-2.0.0-chexpert.csv.gz", index=False)  # .gz as PhysioNet ships it
    return ecg_root, cxr_root


@pytest.fixture
def mimic(tmp_path) -> tuple[Path, Path]:
    return write_mimic(tmp_path)


def pair_ids(path) -> set[str]:
    return set(load_manifest(path)["pair_id"])


def test_pairs_and_funnel_counts(mimic, tmp_path):
    report = build_mimic_manifest(*mimic, tmp_path / "m.parquet")
    assert pair_ids(tmp_path / "m.parquet") == DEFAULT_PAIRS
    assert report.steps == [("ECG records (record_list)", 9), ("ECG records with a time", 8), ("CXR studies", 10),
                            ("CXR images", 11), ("frontal images (PA/AP)", 9),
                            ("frontal images of subjects with an ECG", 7),
                            ("frontal images with an ECG within ±24 h", 6), ("pairs (each ECG used once)", 5)]
    assert report.pairs == 5 and report.notes[0].startswith("1 pair(s) have no CheXpert row for their study (1 study)")
    df = load_manifest(tmp_path / "m.parquet")
    row = df.set_index("pair_id").loc["40000001-d-s1-pa"]
    assert row["ecg_path"] == str(mimic[0] / "files/p1000/p10000001/s40000001/40000001.hea")
    assert row["image_path"] == str(mimic[1] / "files/p10/p10000001/s50000001/d-s1-pa.dcm")
    assert row["ecg_time"] == pd.Timestamp("2150-01-10 10:00") and row["image_time"] == pd.Timestamp("2150-01-10 12:00")
    assert (df["image_kind"] == "cxr").all()


def test_frontal_filter_drops_lateral_views(mimic, tmp_path):
    build_mimic_manifest(*mimic, tmp_path / "m.parquet", window_hours=1000)
    paths = " ".join(load_manifest(tmp_path / "m.parquet")["image_path"])
    assert "d-s1-pa" in paths and "d-s1-lat" not in paths and "d-s5-ll" not in paths


def test_window_is_inclusive_and_configurable(mimic, tmp_path):
    assert pair_ids(build_mimic_manifest(*mimic, tmp_path / "a.parquet", window_hours=26).manifest_path) \
        == DEFAULT_PAIRS | {"40000002-d-s2-ap"}
    assert pair_ids(build_mimic_manifest(*mimic, tmp_path / "b.parquet", window_hours=23.5).manifest_path) \
        == DEFAULT_PAIRS - {"40000008-d-s8-pa"}
    with pytest.raises(ConfigError, match="window_hours"):
        build_mimic_manifest(*mimic, tmp_path / "c.parquet", window_hours=0)


def test_each_ecg_used_once_unless_reused(mimic, tmp_path):
    df = load_manifest(build_mimic_manifest(*mimic, tmp_path / "a.parquet").manifest_path)
    assert df["ecg_path"].is_unique and df["image_path"].is_unique
    reused = pair_ids(build_mimic_manifest(*mimic, tmp_path / "b.parquet", reuse_ecg=True).manifest_path)
    assert reused == DEFAULT_PAIRS | {"40000003-d-s3-a"}  # S3's ECG now serves both films


@pytest.mark.parametrize("policy, value", [("zeros", 0.0), ("ones", 1.0), ("ignore", np.nan)])
def test_uncertain_policy(mimic, tmp_path, policy, value):
    build_mimic_manifest(*mimic, tmp_path / "m.parquet", uncertain=policy)
    df = load_manifest(tmp_path / "m.parquet").set_index("pair_id")
    labels = df[["cardiomegaly", "pleural_effusion", "edema"]]
    expected = {  # -1 -> policy value, blank and missing rows -> NaN
        "40000001-d-s1-pa": [value, np.nan, 1.0],
        "40000003-d-s3-b": [1.0, value, 0.0],
        "40000006-d-s4-a": [0.0, 0.0, 0.0],
        "40000005-d-s4-b": [np.nan, 1.0, value],
        "40000008-d-s8-pa": [np.nan, np.nan, np.nan],
    }
    for pid, row in expected.items():
        np.testing.assert_array_equal(labels.loc[pid].to_numpy(), row, err_msg=pid)
    with pytest.raises(ConfigError, match="uncertain='maybe'"):
        build_mimic_manifest(*mimic, tmp_path / "x.parquet", uncertain="maybe")


# Blank cells: not mentioned in the report, unlike a study with no CheXpert row at all (50000010)
BLANK_CHEXPERT = [  # subject, study, Cardiomegaly, Pleural Effusion, Edema, No Finding (None = blank)
    ("10000001", "50000001", -1, None, 1, None),  # uncertain, blank, positive
    ("10000003", "50000004", None, None, None, 1),  # No Finding = 1, nothing else mentioned
    ("10000004", "50000005", None, None, None, None),  # nothing mentioned at all
    ("10000004", "50000006", 0, None, None, 1),  # one negative mentioned, No Finding = 1
]
NAN = np.nan
BLANK_EXPECTED = {  # pair -> labels under --blank nan / negative / negative_if_no_finding (--uncertain zeros)
    "40000001-d-s1-pa": ([0, NAN, 1], [0, 0, 1], [0, NAN, 1]),
    "40000003-d-s3-b": ([NAN, NAN, NAN], [0, 0, 0], [0, 0, 0]),
    "40000006-d-s4-a": ([NAN, NAN, NAN], [0, 0, 0], [NAN, NAN, NAN]),
    "40000005-d-s4-b": ([0, NAN, NAN], [0, 0, 0], [0, 0, 0]),
    "40000008-d-s8-pa": ([NAN, NAN, NAN], [NAN, NAN, NAN], [NAN, NAN, NAN]),  # no CheXpert row
}


def labels_of(path) -> pd.DataFrame:
    return load_manifest(path).set_index("pair_id")[["cardiomegaly", "pleural_effusion", "edema"]]


@pytest.mark.parametrize("k, policy", list(enumerate(BLANK_POLICIES)))
def test_blank_policy(tmp_path, k, policy):
    cohort = write_mimic(tmp_path / "in", chexpert=BLANK_CHEXPERT)
    report = build_mimic_manifest(*cohort, tmp_path / "m.parquet", blank=policy)
    labels = labels_of(tmp_path / "m.parquet")
    for pid, rows in BLANK_EXPECTED.items():
        np.testing.assert_array_equal(labels.loc[pid].to_numpy(), rows[k], err_msg=f"{pid} under {policy}")
    assert label_policies(tmp_path / "m.parquet") == {"uncertain": "zeros", "blank": policy}
    assert report.notes[0] == "1 pair(s) have no CheXpert row for their study (1 study): labels NaN under every policy"
    silent = {"nan": 2, "negative": 0, "negative_if_no_finding": 1}[policy]  # rows that mention none of the labels
    assert [n for n in report.notes if "mentions none of" in n] == ([
        f"{silent} pair(s) have a CheXpert row that mentions none of Cardiomegaly, Pleural Effusion, Edema "
        f"(all blank): labels NaN under --blank {policy}"] if silent else [])


def test_label_counts_before_and_after_the_policies(tmp_path):
    cohort = write_mimic(tmp_path / "in", chexpert=BLANK_CHEXPERT)
    report = build_mimic_manifest(*cohort, tmp_path / "m.parquet", blank="negative_if_no_finding")
    counts = report.label_counts
    assert list(counts.columns) == ["positive", "negative", "uncertain", "blank", "no_row",
                                    "out_positive", "out_negative", "out_nan"]
    assert counts.loc["cardiomegaly"].tolist() == [0, 1, 1, 2, 1, 0, 3, 2]  # -1 -> 0; one blank under No Finding
    assert counts.loc["pleural_effusion"].tolist() == [0, 0, 0, 4, 1, 0, 2, 3]
    assert counts.loc["edema"].tolist() == [1, 0, 0, 3, 1, 1, 2, 2]
    assert (counts.iloc[:, :5].sum(axis=1) == 5).all() and (counts.iloc[:, 5:].sum(axis=1) == 5).all()
    for name, st in report.labels.items():  # "after" agrees with the manifest's own statistics
        assert counts.loc[name, ["out_positive", "out_negative", "out_nan"]].tolist() == \
            [st["positive"], st["negative"], st["unknown"]]
    text = str(report)
    assert "label policies: uncertain=zeros (-1 -> 0), blank=negative_if_no_finding (blank -> 0 where No Finding = 1" \
        in text
    assert "  cardiomegaly               0         1         1         2         1  |        0         3         2" \
        in text
    assert text.index("CheXpert values of the 5 pairs") < text.index("note: 1 pair(s) have no CheXpert row")


def test_uncertain_is_governed_by_uncertain_not_blank(tmp_path):
    cohort = write_mimic(tmp_path / "in", chexpert=BLANK_CHEXPERT)
    for uncertain, value in (("ignore", NAN), ("ones", 1.0), ("zeros", 0.0)):
        out = tmp_path / f"{uncertain}.parquet"
        report = build_mimic_manifest(*cohort, out, uncertain=uncertain, blank="negative")
        np.testing.assert_array_equal(labels_of(out).loc["40000001-d-s1-pa"].to_numpy(), [value, 0, 1])
        assert report.label_counts.loc["cardiomegaly", "uncertain"] == 1
        assert label_policies(out) == {"uncertain": uncertain, "blank": "negative"}


def test_no_row_note_only_when_a_study_has_no_row(tmp_path):
    cohort = write_mimic(tmp_path / "in", chexpert=BLANK_CHEXPERT + [("10000008", "50000010", 1, 1, 1, None)])
    report = build_mimic_manifest(*cohort, tmp_path / "m.parquet", blank="negative")
    assert not any("no CheXpert row" in n for n in report.notes)
    assert (report.label_counts["no_row"] == 0).all()
    np.testing.assert_array_equal(labels_of(tmp_path / "m.parquet").loc["40000008-d-s8-pa"].to_numpy(), [1, 1, 1])


def test_policy_errors_are_one_line(mimic, tmp_path):
    with pytest.raises(ConfigError, match=r"^blank='zero' is not one of nan, negative, negative_if_no_finding$"):
        build_mimic_manifest(*mimic, tmp_path / "m.parquet", blank="zero")
    with pytest.raises(ManifestError, match=r"missing column\(s\) No Finding \(No Finding: --blank "
                                            r"negative_if_no_finding needs it\); found"):
        build_mimic_manifest(*mimic, tmp_path / "m.parquet", blank="negative_if_no_finding")  # CSV without it
    assert not (tmp_path / "m.parquet").exists()


def test_splits_are_by_subject_and_leak_free(mimic, tmp_path):
    build_mimic_manifest(*mimic, tmp_path / "m.parquet", split_seed=5, fractions=(0.5, 0.25, 0.25))
    df = load_manifest(tmp_path / "m.parquet")
    check_no_leakage(df)
    stratified = assign_splits(df["subject_id"], fractions=(0.5, 0.25, 0.25), seed=5,
                               labels=df[["cardiomegaly", "pleural_effusion", "edema"]])
    np.testing.assert_array_equal(df["split"], stratified)  # stratified over the label columns


def test_check_files_drops_pairs_with_missing_files(mimic, tmp_path):
    ecg_root, cxr_root = mimic
    for f in (ecg_root / "files/p1000/p10000001/s40000001/40000001.hea",
              cxr_root / "files/p10/p10000001/s50000001/d-s1-pa.dcm"):
        f.parent.mkdir(parents=True)
        f.touch()
    report = build_mimic_manifest(ecg_root, cxr_root, tmp_path / "m.parquet", check_files=True)
    assert report.count("pairs with both files") == 1
    assert pair_ids(tmp_path / "m.parquet") == {"40000001-d-s1-pa"}


def test_input_errors_name_the_file_and_column(tmp_path):
    ecg_root, cxr_root = write_mimic(tmp_path / "a")
    (ecg_root / "record_list.csv").unlink()
    with pytest.raises(ManifestError, match=r"record_list\.csv: not found \(nor record_list\.csv\.gz\)"):
        build_mimic_manifest(ecg_root, cxr_root, tmp_path / "m.parquet")
    ecg_root, cxr_root = write_mimic(tmp_path / "b")
    meta = pd.read_csv(cxr_root / "mimic-cxr-2.0.0-metadata.csv").drop(columns="ViewPosition")
    meta.to_csv(cxr_root / "mimic-cxr-2.0.0-metadata.csv", index=False)
    with pytest.raises(ManifestError, match=r"metadata\.csv: missing column\(s\) ViewPosition"):
        build_mimic_manifest(ecg_root, cxr_root, tmp_path / "m.parquet")
    ecg_root, cxr_root = write_mimic(tmp_path / "c", chexpert=[("10000001", "50000001", 2, None, 1)])
    with pytest.raises(ManifestError, match="column Cardiomegaly has 1 value"):
        build_mimic_manifest(ecg_root, cxr_root, tmp_path / "m.parquet")
    with pytest.raises(ConfigError, match="unknown CheXpert label"):
        build_mimic_manifest(ecg_root, cxr_root, tmp_path / "m.parquet", labels=["Cardiomegally"])


def test_cli_builds_and_prints_the_report(mimic, tmp_path, capsys):
    main(["--ecg-root", str(mimic[0]), "--cxr-root", str(mimic[1]), "--out", str(tmp_path / "m.parquet"),
          "--window-hours", "26", "--uncertain", "ones"])
    out = capsys.readouterr().out
    assert "pairs (each ECG used once)" in out and "cardiomegaly" in out
    assert "label policies: uncertain=ones (-1 -> 1), blank=nan (blank -> NaN)" in out
    assert pair_ids(tmp_path / "m.parquet") == DEFAULT_PAIRS | {"40000002-d-s2-ap"}


def test_cli_blank_reaches_the_builder(tmp_path, capsys):
    ecg_root, cxr_root = write_mimic(tmp_path / "in", chexpert=BLANK_CHEXPERT)
    args = ["--ecg-root", str(ecg_root), "--cxr-root", str(cxr_root), "--out", str(tmp_path / "m.parquet")]
    main(args + ["--blank", "negative_if_no_finding"])
    assert label_policies(tmp_path / "m.parquet") == {"uncertain": "zeros", "blank": "negative_if_no_finding"}
    np.testing.assert_array_equal(labels_of(tmp_path / "m.parquet").loc["40000003-d-s3-b"].to_numpy(), [0, 0, 0])
    assert "blank=negative_if_no_finding" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(args + ["--blank", "zero"])
    assert "argument --blank: invalid choice: 'zero'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The greedy matching against the plain sequential loop it replaces
# ---------------------------------------------------------------------------------------------


def sequential_greedy(cand: pd.DataFrame) -> set[tuple[int, int]]:
    used_img, used_ecg, kept = set(), set(), set()
    for img, ecg in zip(cand["img"], cand["ecg"]):
        if img not in used_img and ecg not in used_ecg:
            kept.add((img, ecg))
            used_img.add(img)
            used_ecg.add(ecg)
    return kept


@pytest.mark.parametrize("seed", range(20))
def test_greedy_rounds_equal_the_sequential_greedy(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    cand = pd.DataFrame({"img": rng.integers(0, 30, n), "ecg": rng.integers(0, 30, n),
                         "gap": rng.integers(0, 10, n).astype(float)})  # many ties
    cand = cand.drop_duplicates(["img", "ecg"]).sort_values(["gap", "img", "ecg"], kind="mergesort")
    got = greedy_match(cand)
    assert set(zip(got["img"], got["ecg"])) == sequential_greedy(cand)
    reuse = greedy_match(cand, reuse_ecg=True)
    assert reuse["img"].is_unique and set(reuse["img"]) == set(cand["img"])


# ---------------------------------------------------------------------------------------------
# A synthetic cohort (same parameters as tests/data/test_synthetic.py: generated once per session)
# ---------------------------------------------------------------------------------------------

SMALL = dict(subjects=40, seed=7, cxr_shape=(64, 64))


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory) -> Path:
    root = tmp_path_factory.getbasetemp() / "synthetic-cxr-small"
    return ensure_demo_cohort(root, workers=2, verbose=False, **SMALL).parent


def reference_pairs(root: Path, window_s: float = 24 * 3600) -> set[str]:
    """The pairing rule written out plainly: frontal films, same subject, |gap| <= window, greedy by gap."""
    ecg = pd.read_csv(root / "mimic-iv-ecg/record_list.csv", dtype=str)
    meta = pd.read_csv(root / "mimic-cxr/mimic-cxr-2.0.0-metadata.csv", dtype=str)
    cand = []
    for m in meta[meta["ViewPosition"].isin(["PA", "AP"])].itertuples():
        hhmmss, frac = (m.StudyTime.split(".") + ["0"])[:2]
        hhmmss = hhmmss.zfill(6)
        t_img = datetime.strptime(m.StudyDate + hhmmss, "%Y%m%d%H%M%S") + timedelta(seconds=float("0." + frac))
        for e in ecg[ecg["subject_id"] == m.subject_id].itertuples():
            gap = abs((t_img - datetime.fromisoformat(e.ecg_time)).total_seconds())
            if gap <= window_s:
                cand.append((gap, m.dicom_id, e.study_id))
    used_img, used_ecg, kept = set(), set(), set()
    for _, d, e in sorted(cand):
        if d not in used_img and e not in used_ecg:
            kept.add(f"{e}-{d}")
            used_img.add(d)
            used_ecg.add(e)
    return kept


def test_synthetic_cohort_pairs_match_the_plain_reference(small_cohort, tmp_path):
    report = build_mimic_manifest(small_cohort / "mimic-iv-ecg", small_cohort / "mimic-cxr", tmp_path / "m.parquet")
    df = load_manifest(tmp_path / "m.parquet")
    assert set(df["pair_id"]) == reference_pairs(small_cohort)
    assert report.count("CXR images") > report.count("frontal images (PA/AP)")  # laterals were dropped
    assert report.count("frontal images of subjects") > report.count("frontal images with an ECG within")
    assert df["ecg_path"].is_unique and df["image_path"].is_unique
    check_no_leakage(df)
    assert all(Path(p).is_file() for p in df["ecg_path"]) and all(Path(p).is_file() for p in df["image_path"])
    wide = build_mimic_manifest(small_cohort / "mimic-iv-ecg", small_cohort / "mimic-cxr", tmp_path / "w.parquet",
                                window_hours=48)
    assert set(load_manifest(wide.manifest_path)["pair_id"]) == reference_pairs(small_cohort, 48 * 3600)
    assert wide.pairs > report.pairs  # the synthetic 26-40 h ECGs come in with a 48 h window


def test_synthetic_uncertain_labels_follow_the_policy(small_cohort, tmp_path):
    chex = pd.read_csv(small_cohort / "mimic-cxr/mimic-cxr-2.0.0-chexpert.csv", dtype={"study_id": str})
    by_study = chex.set_index("study_id")["Cardiomegaly"]
    out = {}
    for policy in ("zeros", "ones", "ignore"):
        build_mimic_manifest(small_cohort / "mimic-iv-ecg", small_cohort / "mimic-cxr", tmp_path / f"{policy}.parquet",
                             uncertain=policy)
        df = load_manifest(tmp_path / f"{policy}.parquet").set_index("pair_id").sort_index()
        out[policy] = df["cardiomegaly"]
    study = out["zeros"].index.map(lambda pid: Path(df.loc[pid, "image_path"]).parent.name[1:])
    raw = by_study.reindex(study).to_numpy()
    unsure = raw == -1
    assert unsure.sum() >= 1, "the synthetic cohort should hold uncertain Cardiomegaly labels"
    assert (out["zeros"][unsure] == 0).all() and (out["ones"][unsure] == 1).all()
    assert out["ignore"][unsure].isna().all()
    for policy in out:  # everything else is the same under every policy
        np.testing.assert_array_equal(out[policy][~unsure].to_numpy(), raw[~unsure])


def test_synthetic_blank_labels_follow_the_policy(small_cohort, tmp_path):
    chex = pd.read_csv(small_cohort / "mimic-cxr/mimic-cxr-2.0.0-chexpert.csv", dtype={"study_id": str})
    chex = chex.set_index("study_id")
    for policy in BLANK_POLICIES:  # Pneumothorax is mostly blank, as the unmodelled findings are on MIMIC-CXR
        report = build_mimic_manifest(small_cohort / "mimic-iv-ecg", small_cohort / "mimic-cxr",
                                      tmp_path / f"{policy}.parquet", blank=policy, labels=("Pneumothorax", "Edema"))
        df = load_manifest(report.manifest_path)
        raw = chex.reindex(df["image_path"].map(lambda p: Path(p).parent.name[1:]))
        clear = (raw["No Finding"] == 1).to_numpy()
        for name, col in (("Pneumothorax", "pneumothorax"), ("Edema", "edema")):
            v, got = raw[name].to_numpy(), df[col].to_numpy()
            blank = np.isnan(v)
            if name == "Pneumothorax":
                assert (blank & clear).any() and (blank & ~clear).any(), "the synthetic cohort should hold both kinds"
            want = {"nan": np.nan, "negative": 0.0, "negative_if_no_finding": np.where(clear, 0.0, np.nan)}[policy]
            np.testing.assert_array_equal(got, np.where(blank, want, v.clip(0, 1)), err_msg=policy)  # -1 -> 0
            counts = report.label_counts.loc[col]
            assert counts["blank"] == blank.sum() and counts["no_row"] == 0
            assert counts[["out_positive", "out_negative", "out_nan"]].tolist() == \
                [(got == 1).sum(), (got == 0).sum(), np.isnan(got).sum()]
