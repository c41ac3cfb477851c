"""Build a cohort manifest from MIMIC-IV-ECG + MIMIC-CXR, laid out as PhysioNet ships them.

Inputs (``.csv`` or ``.csv.gz``)::

    <ecg_root>/record_list.csv                 subject_id, study_id, file_name, ecg_time, path
    <ecg_root>/files/p1000/p10000032/s40689238/40689238.{hea,dat}
    <cxr_root>/mimic-cxr-2.0.0-metadata.csv    dicom_id, subject_id, study_id, ViewPosition,
                                               StudyDate (YYYYMMDD), StudyTime (HHMMSS.fff), ...
    <cxr_root>/mimic-cxr-2.0.0-chexpert.csv    subject_id, study_id, 14 CheXpert labels (1/0/-1/blank)
    <cxr_root>/files/p10/p10000032/s50414267/<dicom_id>.dcm

Pairing rule: same subject; frontal images only (``ViewPosition`` PA or AP; lateral and other
views are dropped); an image is paired with an ECG taken within ``±window_hours`` of the study.
Unless ``reuse_ecg``, each ECG is used at most once: candidate (image, ECG) pairs are taken
greedily in order of increasing time gap (ties broken by ``dicom_id`` then ECG ``study_id``), a
pair being kept when neither its image nor its ECG is already taken. The greedy matching is
computed without a Python loop over rows, in rounds that keep every candidate which is the best
remaining one for both its image and its ECG (this gives exactly the sequential greedy result).
With ``reuse_ecg`` every image simply takes its nearest ECG.

Labels come from the CheXpert file by (subject, study): :mod:`xmodal.data.chexpert` maps -1
(uncertain) and blank by the ``uncertain`` and ``blank`` policies, and the manifest records both
(:func:`~xmodal.data.chexpert.label_policies`).

    python -m xmodal.data.mimic --ecg-root mimic-iv-ecg --cxr-root mimic-cxr --out cohort/manifest.parquet
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from xmodal.data.chexpert import (BLANK_POLICIES, CHEXPERT_LABELS, LABEL_POLICIES_KEY, UNCERTAIN_POLICIES,
                                   apply_label_policies, check_policies, chexpert_columns, count_labels,
                                   policies_text, read_chexpert_values)
from xmodal.data.manifest import BuildReport, describe, save_manifest, snake_case
from xmodal.data.physionet import find_csv, read_columns
from xmodal.data.splits import assign_splits
from xmodal.errors import ConfigError

ECG_RECORD_LIST = "record_list.csv"
CXR_METADATA = "mimic-cxr-2.0.0-metadata.csv"
ECG_COLUMNS = ("subject_id", "study_id", "file_name", "ecg_time", "path")
METADATA_COLUMNS = ("dicom_id", "subject_id", "study_id", "ViewPosition", "StudyDate", "StudyTime")
FRONTAL_VIEWS = ("PA", "AP")
_KEY_SHIFT = 40  # composite search key: subject code << 40 | whole seconds (2**40 s ~ 34,000 years)


def _seconds(ts: pd.Series) -> np.ndarray:
    """Seconds since 1970 as float64 (NaT -> NaN); microsecond-exact for MIMIC's shifted years."""
    us = ts.to_numpy(dtype="datetime64[us]").astype(np.int64).astype(np.float64) / 1e6
    us[ts.isna().to_numpy()] = np.nan
    return us


def read_ecg_records(ecg_root: str | Path) -> pd.DataFrame:
    """``record_list.csv`` with ``ecg_time`` parsed and ``ecg_path`` (absolute ``.hea``) added."""
    root = Path(ecg_root).absolute()
    path = find_csv(root, ECG_RECORD_LIST)
    df = read_columns(path, ECG_COLUMNS)
    df["ecg_time"] = pd.to_datetime(df["ecg_time"], format="ISO8601", errors="coerce").astype("datetime64[us]")
    df["ecg_path"] = (str(root) + "/") + df["path"].str.strip("/") + ".hea"
    return df


def read_cxr_images(cxr_root: str | Path) -> pd.DataFrame:
    """``mimic-cxr-2.0.0-metadata.csv`` with ``image_time`` (StudyDate + StudyTime) and ``image_path``."""
    root = Path(cxr_root).absolute()
    path = find_csv(root, CXR_METADATA)
    df = read_columns(path, METADATA_COLUMNS, dtype={c: str for c in METADATA_COLUMNS} | {"StudyTime": float})
    date = pd.to_datetime(df["StudyDate"], format="%Y%m%d", errors="coerce")
    t = df["StudyTime"].to_numpy(np.float64)
    secs = (t // 10000) * 3600 + ((t // 100) % 100) * 60 + (t % 100)
    df["image_time"] = (date + pd.to_timedelta(np.round(secs, 6), unit="s")).astype("datetime64[us]")
    sid = df["subject_id"]
    df["image_path"] = (str(root) + "/files/p") + sid.str[:2] + "/p" + sid + "/s" + df["study_id"] \
        + "/" + df["dicom_id"] + ".dcm"
    return df


@dataclass
class MimicBuildReport(BuildReport):
    """A :class:`BuildReport` plus the label policies and what they turned the CheXpert values into."""

    policies: dict[str, str] = field(default_factory=dict)  # {"uncertain": ..., "blank": ...}
    label_counts: pd.DataFrame | None = None  # count_labels over the manifest's pairs

    def __str__(self) -> str:
        lines = [BuildReport.__str__(replace(self, notes=[]))]
        if self.policies:
            lines += ["", f"  label policies: {policies_text(self.policies)}"]
        c = self.label_counts
        if c is not None and len(c):
            def row(name: str, cells: Sequence[str]) -> str:
                return f"  {name:<18} " + " ".join(f"{x:>9}" for x in cells[:5]) + "  |" \
                    + " ".join(f"{x:>9}" for x in cells[5:])

            lines += ["", f"  CheXpert values of the {self.pairs:,} pairs (before the policies) | "
                          "manifest labels (after)",
                      row("label", ("positive", "negative", "uncertain", "blank", "no row", "1.0", "0.0", "NaN"))]
            lines += [row(str(name), [f"{int(n):,}" for n in r.to_numpy()]) for name, r in c.iterrows()]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def candidate_pairs(images: pd.DataFrame, ecgs: pd.DataFrame, window_s: float) -> pd.DataFrame:
    """Every (image row, ECG row) of the same subject within ``window_s`` seconds: img, ecg, gap.

    Uses a sorted composite key (subject, time) and ``searchsorted``, so the cost grows with the
    number of candidates, not with images x ECGs per subject.
    """
    codes, uniq = pd.factorize(pd.concat([ecgs["subject_id"], images["subject_id"]], ignore_index=True))
    e_code, i_code = codes[: len(ecgs)].astype(np.int64), codes[len(ecgs):].astype(np.int64)
    e_t, i_t = _seconds(ecgs["ecg_time"]), _seconds(images["image_time"])
    t0 = np.nanmin(np.concatenate([e_t, i_t, [0.0]]))
    e_key = (e_code << _KEY_SHIFT) + np.floor(e_t - t0).astype(np.int64)
    i_key = (i_code << _KEY_SHIFT) + np.floor(i_t - t0).astype(np.int64)
    order = np.argsort(e_key, kind="stable")
    sorted_key = e_key[order]
    pad = int(np.ceil(window_s)) + 1
    lo = np.searchsorted(sorted_key, i_key - pad, side="left")
    hi = np.searchsorted(sorted_key, i_key + pad, side="right")
    n = hi - lo
    img = np.repeat(np.arange(len(images)), n)
    start = np.repeat(np.cumsum(n) - n, n)
    ecg = order[np.repeat(lo, n) + (np.arange(int(n.sum())) - start)]
    gap = np.abs(i_t[img] - e_t[ecg])
    keep = (e_code[ecg] == i_code[img]) & (gap <= window_s)
    return pd.DataFrame({"img": img[keep], "ecg": ecg[keep], "gap": gap[keep]})


def greedy_match(cand: pd.DataFrame, *, reuse_ecg: bool = False) -> pd.DataFrame:
    """Keep at most one ECG per image (and one image per ECG unless ``reuse_ecg``).

    ``cand`` must be sorted in the order of preference (best first). Returns the kept rows.
    """
    if reuse_ecg:
        return cand[~cand["img"].duplicated()]
    kept = []
    while len(cand):
        best = ~cand["img"].duplicated() & ~cand["ecg"].duplicated()  # best remaining for both sides
        accepted = cand[best]
        kept.append(accepted)
        cand = cand[~cand["img"].isin(accepted["img"]) & ~cand["ecg"].isin(accepted["ecg"])]
    return pd.concat(kept) if kept else cand


def build_mimic_manifest(ecg_root: str | Path, cxr_root: str | Path, out_path: str | Path, *,
                         window_hours: float = 24.0, reuse_ecg: bool = False, uncertain: str = "zeros",
                         blank: str = "nan", labels: Sequence[str] = ("Cardiomegaly", "Pleural Effusion", "Edema"),
                         split_seed: int = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                         check_files: bool = False, verbose: bool = False) -> MimicBuildReport:
    """Pair MIMIC-IV-ECG records with frontal MIMIC-CXR images and write the manifest.

    ``uncertain`` and ``blank`` map CheXpert -1 and blank to labels (module docstring); the manifest
    records them (:func:`~xmodal.data.chexpert.label_policies`). ``check_files`` drops pairs whose ``.hea`` or ``.dcm`` is
    missing (a partial download) and counts them. Splits are by subject, stratified over the labels
    (:func:`~xmodal.data.splits.assign_splits`). Returns a :class:`MimicBuildReport`; ``verbose`` also prints it.
    """
    if window_hours <= 0:
        raise ConfigError(f"window_hours={window_hours} must be > 0")
    check_policies(uncertain, blank)
    unknown = [lab for lab in labels if lab not in CHEXPERT_LABELS]
    if unknown:
        raise ConfigError(f"unknown CheXpert label(s) {', '.join(unknown)}; valid: {', '.join(CHEXPERT_LABELS)}")
    ecgs = read_ecg_records(ecg_root)
    images = read_cxr_images(cxr_root)
    chex = read_chexpert_values(cxr_root, chexpert_columns(labels, blank))
    label_names = [snake_case(lab) for lab in labels]
    report = MimicBuildReport(Path(out_path), policies={"uncertain": uncertain, "blank": blank})
    step = report.steps.append

    step(("ECG records (record_list)", len(ecgs)))
    ecgs = ecgs[ecgs["ecg_time"].notna()].reset_index(drop=True)
    step(("ECG records with a time", len(ecgs)))
    step(("CXR studies", int(images[["subject_id", "study_id"]].drop_duplicates().shape[0])))
    step(("CXR images", len(images)))
    frontal = images[images["ViewPosition"].isin(FRONTAL_VIEWS) & images["image_time"].notna()]
    frontal = frontal.reset_index(drop=True)
    step(("frontal images (PA/AP)", len(frontal)))
    frontal = frontal[frontal["subject_id"].isin(ecgs["subject_id"])].reset_index(drop=True)
    step(("frontal images of subjects with an ECG", len(frontal)))

    cand = candidate_pairs(frontal, ecgs, window_hours * 3600.0)
    step((f"frontal images with an ECG within ±{window_hours:g} h", int(cand["img"].nunique())))
    cand["dicom_id"] = frontal["dicom_id"].to_numpy()[cand["img"].to_numpy()]
    cand["ecg_study"] = ecgs["study_id"].to_numpy()[cand["ecg"].to_numpy()]
    cand = cand.sort_values(["gap", "dicom_id", "ecg_study"], kind="mergesort")
    pairs = greedy_match(cand, reuse_ecg=reuse_ecg)
    step((f"pairs ({'ECGs reused' if reuse_ecg else 'each ECG used once'})", len(pairs)))

    img, ecg = frontal.iloc[pairs["img"].to_numpy()], ecgs.iloc[pairs["ecg"].to_numpy()]
    df = pd.DataFrame({
        "pair_id": ecg["study_id"].to_numpy() + "-" + img["dicom_id"].to_numpy(),
        "subject_id": img["subject_id"].to_numpy(),
        "ecg_path": ecg["ecg_path"].to_numpy(),
        "image_path": img["image_path"].to_numpy(),
        "image_kind": "cxr",
        "split": "train",
        "ecg_time": ecg["ecg_time"].to_numpy(),
        "image_time": img["image_time"].to_numpy(),
        "study_id": img["study_id"].to_numpy(),
    })
    df = df.merge(chex, on=["subject_id", "study_id"], how="left", validate="many_to_one", indicator="chexpert_row")
    df["chexpert_row"] = df["chexpert_row"].eq("both")
    df = df.sort_values(["subject_id", "image_time", "pair_id"]).reset_index(drop=True)

    if check_files:
        from os.path import isfile

        present = np.array([isfile(e) and isfile(i) for e, i in zip(df["ecg_path"], df["image_path"])], bool)
        df = df[present].reset_index(drop=True)
        step(("pairs with both files on disk", len(df)))

    has_row = df["chexpert_row"].to_numpy(bool)
    out = apply_label_policies(df, labels, has_row, uncertain=uncertain, blank=blank)
    report.label_counts = count_labels(df, labels, has_row, out)
    if not has_row.all():
        k = df.loc[~has_row, "study_id"].nunique()
        report.notes.append(f"{int((~has_row).sum())} pair(s) have no CheXpert row for their study "
                            f"({k} {'study' if k == 1 else 'studies'}): labels NaN under every policy")
    silent = has_row & df[list(labels)].isna().all(axis=1).to_numpy() & out.isna().all(axis=1).to_numpy()
    if labels and silent.any():
        report.notes.append(f"{int(silent.sum())} pair(s) have a CheXpert row that mentions none of "
                            f"{', '.join(labels)} (all blank): labels NaN under --blank {blank}")
    df = pd.concat([df.drop(columns=["study_id", "chexpert_row", *chexpert_columns(labels, blank)]), out], axis=1)
    df["split"] = assign_splits(df["subject_id"], fractions=fractions, seed=split_seed, labels=df[label_names])
    policies = json.dumps(report.policies)
    report.manifest_path = save_manifest(df, out_path, metadata={LABEL_POLICIES_KEY: policies})
    report.splits, report.labels = describe(df)
    if verbose:
        print(report)
    return report


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m xmodal.data.mimic", description=__doc__.split("\n")[0])
    p.add_argument("--ecg-root", required=True, help="MIMIC-IV-ECG folder (holds record_list.csv)")
    p.add_argument("--cxr-root", required=True, help="MIMIC-CXR folder (holds the metadata/chexpert CSVs)")
    p.add_argument("--out", required=True, help="manifest to write (.parquet)")
    p.add_argument("--window-hours", type=float, default=24.0)
    p.add_argument("--reuse-ecg", action="store_true")
    p.add_argument("--uncertain", choices=list(UNCERTAIN_POLICIES), default="zeros",
                   help="CheXpert -1 (uncertain): zeros -> 0, ones -> 1, ignore -> NaN (default: zeros)")
    p.add_argument("--blank", choices=BLANK_POLICIES, default="nan",
                   help="CheXpert blank (finding not mentioned in the report): nan -> NaN (unknown), "
                        "negative -> 0, negative_if_no_finding -> 0 where the study's No Finding is 1, "
                        "else NaN. A study with no CheXpert row is NaN under every policy (default: nan)")
    p.add_argument("--labels", nargs="+", default=["Cardiomegaly", "Pleural Effusion", "Edema"])
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--check-files", action="store_true", help="drop pairs whose files are missing")
    a = p.parse_args(argv)
    build_mimic_manifest(a.ecg_root, a.cxr_root, a.out, window_hours=a.window_hours, reuse_ecg=a.reuse_ecg,
                         uncertain=a.uncertain, blank=a.blank, labels=a.labels, split_seed=a.split_seed,
                         check_files=a.check_files, verbose=True)


if __name__ == "__main__":
    main()
