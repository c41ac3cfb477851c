"""Ray Data: preprocess a cohort once into Parquet shards, then stream paired samples to trainers.

Layout under the storage root (local folder or ``s3://``/``gs://``)::

    shards/<key>/data/*.parquet      one row per pair: ecg f16 [12, L], image u8, labels, split, ok
    shards/<key>/bad_records.csv     file, reason — records that failed to read (skipped, counted)
    shards/<key>/meta.json           written last: marks the shards complete (counts, config, image shape)
    access/<key>.jsonl               which split was opened, when, by whom (test-split hygiene)

``key`` hashes the manifest's content, the preprocessing config and the effective image shape, so a
changed manifest or setting makes new shards and an unchanged one reuses them.

Images are stored at most at the cohort's own size and frame count: ``image.size`` and
``image.cine_frames`` are ceilings (``xmodal.data.geometry`` probes a sample of DICOM headers first).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as pads

from xmodal.config import ECGPreprocessConfig, ImagePreprocessConfig, config_hash, to_dict
from xmodal.errors import ManifestError
from xmodal.storage import Storage

# 2: tensor columns without dictionary encoding or statistics; 3: rows in manifest order;
# 4: images at most at the cohort's native size and frame count (configured sizes are ceilings)
PREPROCESS_VERSION = 4
MAX_RETRIES = 2  # Ray retries of a killed read/write task, then the job fails (Ray's default: without end)
# A decode error is caught per record (a bad record, never a crash). What escapes is a killed actor (out
# of memory, a crashing decoder): it is not restarted, so the job fails at once with Ray's reason.
# (Restartable actors whose constructor arguments sit in the object store make Ray print an error line
# at every start, ray-project/ray#53727.)
BOUNDED_ACTOR_RETRIES = {"max_restarts": 0, "max_task_retries": 0}
MAX_BEATS = 32  # R-peak slots stored per ECG (padded with -1)
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ShardSet:
    """A finished set of preprocessed shards (what ``preprocess`` returns)."""

    storage: Storage
    key: str
    image_kind: str
    labels: tuple[str, ...]
    counts: dict  # {"rows": n, "ok": n, "bad": n, "per_split": {...}}
    reused: bool = False
    image_shape: tuple[int, ...] = ()  # one stored image: (size, size) or (frames, size, size); () unknown

    @property
    def data_uri(self) -> str:
        return self.storage.uri_of("shards", self.key, "data")


def manifest_fingerprint(df: pd.DataFrame) -> str:
    """Content hash of a manifest (independent of row order)."""
    h = pd.util.hash_pandas_object(df.sort_values("pair_id").reset_index(drop=True), index=False)
    return hashlib.sha256(h.values.tobytes() + ",".join(df.columns).encode()).hexdigest()[:16]


def shard_key(df: pd.DataFrame, ecg: ECGPreprocessConfig, image: ImagePreprocessConfig,
              image_shape: tuple[int, ...]) -> str:
    """Hash of the manifest content, both configs and the effective ``image_shape`` (see ``geometry``)."""
    return config_hash({"manifest": manifest_fingerprint(df), "ecg": to_dict(ecg), "image": to_dict(image),
                        "image_shape": list(image_shape), "v": PREPROCESS_VERSION})


# ----------------------------------------------------------------------------------------------
# Per-record work (runs inside Ray Data tasks)
# ----------------------------------------------------------------------------------------------


class _ReadPairs:
    """Ray Data UDF: manifest rows -> preprocessed arrays. A failing record becomes ``ok=False``.

    ``image`` holds the effective sizes (the configured ones capped by the cohort's own).
    """

    def __init__(self, ecg: ECGPreprocessConfig, image: ImagePreprocessConfig, image_kind: str,
                 labels: tuple[str, ...]):
        self.ecg, self.image, self.kind, self.labels = ecg, image, image_kind, labels
        self.n_samples = round(ecg.fs * ecg.seconds)
        self.img_shape = ((image.cine_frames,) if image_kind == "cine" else ()) + (image.size, image.size)

    def _one(self, ecg_path: str, image_path: str, failed: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Both records of a pair; ``failed`` names the file being read when an error escapes."""
        from xmodal.data.dicom import read_cine, read_cxr
        from xmodal.data.ecg import read_ecg

        failed[:] = [ecg_path]
        ecg = read_ecg(ecg_path, config=self.ecg)
        failed[:] = [image_path]
        if self.kind == "cine":
            img = read_cine(image_path, frames=self.image.cine_frames, size=self.image.size, fit=self.image.fit)
            rpeaks = _rpeaks(ecg, self.ecg.fs)
        else:
            img = read_cxr(image_path, size=self.image.size, fit=self.image.fit)
            rpeaks = np.full(MAX_BEATS, -1, np.int32)
        return ecg.astype(np.float16), np.round(np.clip(img, 0, 1) * 255).astype(np.uint8), rpeaks

    def __call__(self, batch: pd.DataFrame) -> dict[str, np.ndarray]:
        n = len(batch)
        ecg = np.zeros((n, 12, self.n_samples), np.float16)
        img = np.zeros((n, *self.img_shape), np.uint8)
        rpeaks = np.full((n, MAX_BEATS), -1, np.int32)
        ok = np.zeros(n, bool)
        errors, bad_file = np.full(n, "", object), np.full(n, "", object)
        for i, (ep, ip) in enumerate(zip(batch["ecg_path"], batch["image_path"])):
            failed: list = []
            try:
                ecg[i], img[i], rpeaks[i] = self._one(ep, ip, failed)
                ok[i] = True
            except Exception as e:  # noqa: BLE001 — any failure of one record is listed, never fatal
                errors[i] = str(e) if hasattr(e, "reason") else f"{type(e).__name__}: {e}"
                bad_file[i] = failed[0] if failed else ep
        out = {
            "pair_id": batch["pair_id"].to_numpy(str),
            "split": batch["split"].to_numpy(str),
            "ecg_path": batch["ecg_path"].to_numpy(str),
            "image_path": batch["image_path"].to_numpy(str),
            "ok": ok, "error": errors.astype(str), "bad_file": bad_file.astype(str), "ecg": ecg, "image": img, "rpeaks": rpeaks,
        }
        for lab in self.labels:
            out[lab] = batch[lab].to_numpy(np.float32)
        return out


def _rpeaks(ecg: np.ndarray, fs: int) -> np.ndarray:
    from xmodal.data.beats import detect_rpeaks

    peaks = np.asarray(detect_rpeaks(ecg, fs), np.int32)[:MAX_BEATS]
    out = np.full(MAX_BEATS, -1, np.int32)
    out[: len(peaks)] = peaks
    return out


# ----------------------------------------------------------------------------------------------
# Driver side
# ----------------------------------------------------------------------------------------------


def preprocess(manifest: pd.DataFrame, ecg: ECGPreprocessConfig, image: ImagePreprocessConfig,
               storage: Storage, *, shard_rows: int = 256, verbose: bool = True) -> ShardSet:
    """Turn a (loaded, validated, absolute-path) manifest into Parquet shards; reuse if present.

    Images are stored at ``cohort_geometry(...).shape``: ``image.size`` and ``image.cine_frames``
    capped by the largest a sample of the cohort's DICOM headers hold (never upsampled past them).
    """
    import ray.data

    from xmodal.data.geometry import cohort_geometry
    from xmodal.data.manifest import label_columns

    kinds = manifest["image_kind"].unique().tolist()
    if len(kinds) != 1:
        raise ManifestError(f"a manifest must hold one image_kind, found {kinds}")
    labels = tuple(label_columns(manifest))
    geometry = cohort_geometry(manifest, image, kinds[0])
    key = shard_key(manifest, ecg, image, geometry.shape)
    if storage.exists("shards", key, "meta.json"):
        meta = storage.read_json("shards", key, "meta.json")
        return ShardSet(storage, key, kinds[0], labels, meta["counts"], reused=True,
                        image_shape=tuple(meta.get("image_shape", ())))

    if verbose:
        print(geometry.describe())
    effective = replace(image, size=geometry.size, cine_frames=geometry.frames or image.cine_frames)
    t0 = time.time()
    storage.delete_dir("shards", key)
    cols = ["pair_id", "split", "ecg_path", "image_path", *labels]
    df = manifest[cols].reset_index(drop=True)
    n_blocks = max(1, math.ceil(len(df) / shard_rows))
    blocks = [df.iloc[i * shard_rows:(i + 1) * shard_rows] for i in range(n_blocks)]
    with in_input_order():
        ds = ray.data.from_pandas(blocks).map_batches(
            _ReadPairs, fn_constructor_args=(ecg, effective, kinds[0], labels), batch_format="pandas",
            batch_size=None, compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, os.cpu_count() or 1)),
            num_cpus=1, **BOUNDED_ACTOR_RETRIES)
        ds.write_parquet(storage.uri_of("shards", key, "data"), filesystem=storage.ray_filesystem,
                         ray_remote_args={"max_retries": MAX_RETRIES},  # Ray's default: retried without end
                         **parquet_options(["pair_id", "split", "ok", "error", "bad_file", "ecg_path", "image_path",
                                            *labels]))

    counts = _summarise(storage, key, labels)
    storage.write_json({"counts": counts, "ecg": to_dict(ecg), "image": to_dict(image),
                        "image_shape": list(geometry.shape), "image_geometry": geometry.to_dict(),
                        "image_kind": kinds[0], "labels": labels, "seconds": round(time.time() - t0, 2),
                        "version": PREPROCESS_VERSION}, "shards", key, "meta.json")
    if verbose:
        bad = counts["bad"]
        where = storage.uri_of("shards", key, "bad_records.csv")
        print(f"[xmodal] preprocessed {counts['rows']} pairs in {time.time() - t0:.1f}s: "
              f"{counts['ok']} ok, {bad} bad" + (f" (listed in {where})" if bad else ""))
    return ShardSet(storage, key, kinds[0], labels, counts, image_shape=geometry.shape)


@contextlib.contextmanager
def in_input_order():
    """Ray Data datasets created in this block emit their rows in input order (a dataset keeps the
    ``DataContext`` it was created with, so the block must cover its creation).

    Without it, a parallel map hands blocks to the writer as they finish: the same cohort gave shards
    with the same rows in another order on every preprocessing, so the stages that read them (in file
    order) trained on other batches, and one config on one cohort gave different results from a fresh
    cache (seen in two smoke searches: validation AUROC 0.639 and 0.528).
    """
    import ray.data

    opts = ray.data.DataContext.get_current().execution_options
    before, opts.preserve_order = opts.preserve_order, True
    try:
        yield
    finally:
        opts.preserve_order = before


def parquet_options(scalar_columns: "list[str] | tuple[str, ...]") -> dict[str, Any]:
    """pyarrow writer options for xmodal's Parquet: dictionary encoding and statistics on the scalar columns only.

    pyarrow's defaults dictionary-encode every column. On a tensor column that only costs: float16 ECGs
    stored that way read 6x slower (0.22 s vs 0.034 s for 673 ECGs of ``[12, 1000]``, measured with
    pyarrow alone), and min/max statistics over millions of samples prune nothing.
    """
    return {"use_dictionary": list(scalar_columns), "write_statistics": list(scalar_columns)}


def _summarise(storage: Storage, key: str, labels: tuple[str, ...]) -> dict[str, Any]:
    """Count rows per split and write ``bad_records.csv`` from the shards' small columns."""
    dataset = pads.dataset(storage.path("shards", key, "data"), format="parquet", filesystem=storage.fs)
    t = dataset.to_table(columns=["split", "ok", "error", "bad_file", "ecg_path", "image_path"]).to_pandas()
    bad = t[~t["ok"]]
    rows = [{"file": r.bad_file, "ecg_path": r.ecg_path, "image_path": r.image_path, "reason": r.error}
            for r in bad.itertuples()]
    csv = pd.DataFrame(rows, columns=["file", "ecg_path", "image_path", "reason"]).to_csv(index=False)
    storage.write_bytes(csv.encode(), "shards", key, "bad_records.csv")
    good = t[t["ok"]]
    return {"rows": int(len(t)), "ok": int(len(good)), "bad": int(len(bad)),
            "per_split": {s: int((good["split"] == s).sum()) for s in SPLITS}}


def bad_records(shards: ShardSet) -> pd.DataFrame:
    """The records that failed to read: ``file, ecg_path, image_path, reason``."""
    import io

    return pd.read_csv(io.BytesIO(shards.storage.read_bytes("shards", shards.key, "bad_records.csv")),
                       keep_default_na=False)


def log_access(storage: Storage, key: str, split: str, purpose: str) -> None:
    """Append to the split-access log (local storage; object stores keep one object per access)."""
    rec = {"time": time.time(), "split": split, "purpose": purpose, "pid": os.getpid()}
    if storage.is_local:
        storage.makedirs("access")
        with open(storage.path("access", f"{key}.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")
    else:
        storage.write_json(rec, "access", key, f"{time.time_ns()}-{os.getpid()}.json")


def read_access_log(storage: Storage, key: str) -> list[dict]:
    if storage.is_local:
        p = Path(storage.path("access", f"{key}.jsonl"))
        return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []
    return [storage.read_json("access", key, n) for n in storage.listdir("access", key)]


def open_split(uri: str, split: str, *, storage: Storage, key: str, columns: list[str] | None = None,
               purpose: str = "train", allow_test: bool = False, where: "pc.Expression | None" = None):
    """A Ray Dataset of the ``ok`` rows of one split of a Parquet folder (shards or features).

    The test split is refused unless ``allow_test`` — only the explicit final evaluation sets it.
    ``where`` adds a pyarrow filter expression (pushed down into the Parquet scan).
    """
    import ray.data

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if split == "test" and not allow_test:
        raise PermissionError("the test split is read only by the explicit final evaluation (allow_test=True)")
    log_access(storage, key, split, purpose)
    expr = (pc.field("split") == split) & (pc.field("ok") == True)  # noqa: E712 — pyarrow expression
    if where is not None:
        expr = expr & where
    return ray.data.read_parquet(uri, columns=columns, filter=expr, filesystem=storage.ray_filesystem,
                                 ray_remote_args={"max_retries": MAX_RETRIES})


def known(label: str) -> "pc.Expression":
    """Filter expression: ``label`` is neither null nor NaN."""
    return pc.field(label).is_valid() & ~pc.is_nan(pc.field(label))
