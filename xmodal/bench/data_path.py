"""Section 2 — paired samples per second from raw files or caches to a trainer's batches.

(a) naive: a single-process PyTorch ``DataLoader`` that reads WFDB + DICOM and resizes per sample;
(b) xmodal's Ray Data preprocess job on the same raw files (writes Parquet shards);
(c) streaming preprocessed shards (ECG ``[12, 1000]`` + 224 px image per row);
(d) streaming ECG + cached image features, as ``align`` reads them.

(c) and (d) run the data path of a training stage as the stages run it: one pass of the Ray Data
stream into memory (``xmodal.stages.loop.collect``, what ``load_split`` does on each Train worker),
then ``STREAM_EPOCHS`` epochs of shuffled minibatches from memory. Their pairs/s is every row handed
to the training loop over those epochs divided by the whole time, the stream's start-up included.
The naive loader decodes every sample again each epoch, so its rate is the same for any number of
epochs. Listed apart: the time to the first batch (planning the read, launching its tasks: a fixed
cost per Train run) and the read pass's own throughput after its first batch.

(a) and (b) read the MIMIC-sized raw cohort. (c) and (d) read shards of the larger search cohort:
a shard row has the same shape whatever the raw image size was, and more rows give steadier figures.
"""

from __future__ import annotations

import shutil
import time

import torch

from xmodal.bench.context import PATHOLOGY
from xmodal.bench.timing import summary, timed
from xmodal.config import ECGPreprocessConfig, ImagePreprocessConfig

ECG, IMAGE = ECGPreprocessConfig(), ImagePreprocessConfig()  # the published 100 Hz x 10 s, 224 px
BATCH = 64  # minibatch handed to the training loop
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


def stream(open_ds, columns: list[str], epochs: int = STREAM_EPOCHS) -> dict[str, float]:
    """One stage's data path over ``epochs``: ``{"run": rows/s handed to the loop, start-up included,
    "read": rows/s of the read pass after its first batch, "first_batch_s": ...}``."""
    from xmodal.stages.loop import READ_BATCH, collect, minibatches, n_rows

    t0 = time.perf_counter()
    first: list[tuple[float, int]] = []

    def batches():
        for b in open_ds().iter_torch_batches(batch_size=READ_BATCH, device="cpu"):
            if not first:
                first.append((time.perf_counter() - t0, len(b[columns[0]])))
            yield b

    data = collect(batches(), columns)
    t_read = time.perf_counter() - t0
    delivered = 0
    for epoch in range(epochs):
        for b in minibatches(data, BATCH, seed=0, epoch=epoch):
            delivered += len(b[columns[0]])
    total = time.perf_counter() - t0
    t_first, n_first = first[0]
    return {"run": delivered / total, "read": (n_rows(data) - n_first) / max(t_read - t_first, 1e-9),
            "first_batch_s": t_first}


def _streams(runs: list[dict[str, float]]) -> tuple[dict, dict, dict]:
    """(run-rate, read-rate, first-batch) summaries of repeated :func:`stream` runs."""
    return tuple(summary([r[k] for r in runs]) for k in ("run", "read", "first_batch_s"))


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
    out["shards"], out["shards_read"], out["shards_first_batch_s"] = _streams(
        [stream(lambda: open_split(shards.data_uri, "train", storage=st, key=shards.key, columns=cols,
                                   purpose="bench"), cols) for _ in range(ctx.size["stream_reps"])])
    feats = chain.features
    cols = ["ecg", "label", "img_feat"]
    out["features"], out["features_read"], out["features_first_batch_s"] = _streams(
        [stream(lambda: open_features(feats, "train", PATHOLOGY, cols), cols) for _ in range(ctx.size["stream_reps"])])
    out["stream_rows"], out["stream_epochs"] = shards.counts["per_split"].get("train"), STREAM_EPOCHS
    base = out["naive"]["median"]
    out["speedup"] = {k: out[k]["median"] / base for k in ("ray_preprocess", "shards", "features")}
    ctx.log(f"data: speedups {out['speedup']}")
    return out
