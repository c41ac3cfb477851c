"""Section 2 — paired samples per second from raw files or caches to a trainer's batches.

(a) naive: a single-process PyTorch ``DataLoader`` that reads WFDB + DICOM and resizes per sample;
(b) xmodal's Ray Data preprocess job on the same raw files (writes Parquet shards);
(c) streaming preprocessed shards (ECG ``[12, 1000]`` + 224 px image per row) with ``iter_torch_batches``;
(d) streaming ECG + cached image features, as ``align`` reads them.

A stream has a start-up latency (planning the read, launching Ray Data's read tasks: the time to the
first batch, 0.35–0.4 s in the committed run, paid once per Train run) and a throughput once it flows. (c) and (d)
report both, separately: rows/s is the throughput over ``STREAM_EPOCHS`` passes after the first batch
(each later pass re-launches its reads, so its own start-up is counted), which is the figure that scales
with the cohort; the start-up is a fixed cost, listed in seconds. The naive loader has no start-up to
speak of: its rate is per-sample decoding.

(a) and (b) read the MIMIC-sized raw cohort. (c) and (d) read shards of the larger search cohort:
a shard row has the same shape whatever the raw image size was, and more rows give steadier figures.
"""

from __future__ import annotations

import shutil

import torch

from xmodal.bench.context import PATHOLOGY
from xmodal.bench.timing import summary, timed
from xmodal.config import ECGPreprocessConfig, ImagePreprocessConfig

ECG, IMAGE = ECGPreprocessConfig(), ImagePreprocessConfig()  # the published 100 Hz x 10 s, 224 px
BATCH = 64
STREAM_EPOCHS = 3


class RawPairs(torch.utils.data.Dataset):
    """What a plain PyTorch pipeline does per sample: read both files, preprocess, return tensors."""

    def __init__(self, df):
        self.rows = df[["ecg_path", "image_path", PATHOLOGY]].to_numpy()

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        from xmodal.data.dicom import read_cxr
        from xmodal.data.ecg import read_ecg

        ecg_path, image_path, label = self.rows[i]
        return {"ecg": torch.from_numpy(read_ecg(ecg_path, config=ECG)),
                "image": torch.from_numpy(read_cxr(image_path, size=IMAGE.size, fit=IMAGE.fit)),
                "label": torch.tensor(float(label))}


def _drain(batches) -> int:
    n = 0
    for b in batches:
        n += len(b["ecg"])
    return n


def naive(df) -> float:
    loader = torch.utils.data.DataLoader(RawPairs(df), batch_size=16, num_workers=0)
    sec, n = timed(lambda: _drain(loader))
    return n / sec


def stream(open_ds, epochs: int = STREAM_EPOCHS) -> tuple[float, float]:
    """``(seconds to the first batch, rows/s after it)`` over ``epochs`` passes of one opened dataset."""
    import time

    ds = open_ds()
    t0 = time.perf_counter()
    batches = iter(ds.iter_torch_batches(batch_size=BATCH))
    first = len(next(batches)["ecg"])
    t_first = time.perf_counter() - t0
    n = _drain(batches)
    for _ in range(epochs - 1):
        n += _drain(ds.iter_torch_batches(batch_size=BATCH))
    return t_first, n / (time.perf_counter() - t0 - t_first)


def _streams(runs: list[tuple[float, float]]) -> tuple[dict, dict]:
    """(throughput summary, first-batch summary) of repeated :func:`stream` runs."""
    return summary([r for _, r in runs]), summary([f for f, _ in runs])


def run(ctx) -> dict:
    from xmodal.data.manifest import load_manifest
    from xmodal.data.pipeline import open_split, preprocess
    from xmodal.stages.align import open_features
    from xmodal.storage import Storage

    raw = load_manifest(ctx.raw_cohort())
    out = {"raw_pairs": len(raw), "batch_size": BATCH}
    out["naive"] = summary([naive(raw) for _ in range(ctx.size["naive_reps"])])
    ctx.log(f"data: naive {out['naive']['median']:.1f}/s")
    rates = []
    for i in range(ctx.size["preprocess_reps"]):
        d = ctx.storage_dir(f"raw-prep-{i}")
        sec, shards = timed(lambda: preprocess(raw, ECG, IMAGE, Storage(str(d)), shard_rows=16, verbose=False))
        rates.append(len(raw) / sec)
        shutil.rmtree(d, ignore_errors=True)
    out["ray_preprocess"] = summary(rates)
    ctx.log(f"data: ray preprocess {out['ray_preprocess']['median']:.1f}/s")

    chain = ctx.warm_chain()
    st = chain.shards.storage
    search = load_manifest(ctx.search_cohort())
    shards = preprocess(search, ECG, IMAGE, st, verbose=False)  # same row format as (b), more rows
    cols = ["ecg", "image", PATHOLOGY]
    out["shards"], out["shards_first_batch_s"] = _streams(
        [stream(lambda: open_split(shards.data_uri, "train", storage=st, key=shards.key, columns=cols,
                                   purpose="bench")) for _ in range(ctx.size["stream_reps"])])
    feats = chain.features
    out["features"], out["features_first_batch_s"] = _streams(
        [stream(lambda: open_features(feats, "train", PATHOLOGY, ["ecg", "label", "img_feat"]))
         for _ in range(ctx.size["stream_reps"])])
    out["stream_rows"], out["stream_epochs"] = shards.counts["per_split"].get("train"), STREAM_EPOCHS
    base = out["naive"]["median"]
    out["speedup"] = {k: out[k]["median"] / base for k in ("ray_preprocess", "shards", "features")}
    ctx.log(f"data: speedups {out['speedup']}")
    return out
