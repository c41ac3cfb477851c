"""Frozen image features, computed once per (image-encoder checkpoint, preprocessed shards).

``align`` keeps the image encoder frozen, so it streams ECGs + these features and never decodes or
re-encodes an image. Only the train and validation splits are encoded (the test split is left to
the explicit final evaluation, which is ECG-only anyway).

    features/<key>/data/*.parquet   pair_id, split, ok, ecg, rpeaks, labels, img_feat [, img_tokens,
                                    ed_feat, es_feat]
    features/<key>/meta.json        written last
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc
import torch

from xmodal.config import ExperimentConfig, config_hash, to_dict
from xmodal.data.pipeline import BOUNDED_ACTOR_RETRIES, MAX_RETRIES, ShardSet, in_input_order, parquet_options
from xmodal.stages.image_model import image_mode
from xmodal.stages.store import StageStore
from xmodal.storage import Storage

FEATURES_VERSION = 2  # 2: tensor columns without dictionary encoding; files of at least FILE_ROWS rows
FILE_ROWS = 2048  # ~50 MB of float16 ECGs a file: few read tasks a pass, still several files on a real cohort
# The image model's outputs -> the feature columns that hold them.
FEATURE_OF = {"embedding": "img_feat", "tokens": "img_tokens", "ed": "ed_feat", "es": "es_feat"}


@dataclass(frozen=True)
class FeatureSet:
    storage: Storage
    key: str
    labels: tuple[str, ...]
    columns: tuple[str, ...]  # the image-feature columns: img_feat [, img_tokens, ed_feat, es_feat]
    reused: bool = False

    @property
    def data_uri(self) -> str:
        return self.storage.uri_of("features", self.key, "data")


class _Encode:
    """Ray Data UDF (one actor holds the frozen encoder): stored images -> pooled features."""

    def __init__(self, cfg_dict: dict, image_kind: str, storage_uri: str, image_key: str):
        from xmodal.config import from_dict
        from xmodal.stages.image_pretrain import load_image_model

        torch.set_num_threads(1)
        cfg = from_dict(cfg_dict)
        self.model = load_image_model(cfg, image_kind, StageStore(Storage(storage_uri)), image_key)

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.model(torch.from_numpy(np.ascontiguousarray(batch.pop("image"))))
        for name, value in out.items():
            batch[FEATURE_OF[name]] = value.float().numpy()
        return batch


def feature_columns(cfg: ExperimentConfig, image_kind: str) -> tuple[str, ...]:
    mode = image_mode(cfg, image_kind)
    return {"cxr": ("img_feat",), "cine": ("img_feat", "img_tokens"),
            "phases": ("img_feat", "ed_feat", "es_feat")}[mode]


def run(cfg: ExperimentConfig, shards: ShardSet, image_key: str, *, verbose: bool = True) -> FeatureSet:
    import ray.data

    st = shards.storage
    cols = feature_columns(cfg, shards.image_kind)
    key = config_hash({"shards": shards.key, "image_pretrain": image_key, "mode": image_mode(cfg, shards.image_kind),
                       "segments": cfg.model.ecg_segments, "v": FEATURES_VERSION})
    if st.exists("features", key, "meta.json"):
        return FeatureSet(st, key, shards.labels, cols, reused=True)
    t0 = time.time()
    st.delete_dir("features", key)
    expr = (pc.field("split") != "test") & (pc.field("ok") == True)  # noqa: E712
    with in_input_order():  # the shards' row order: one seed, one result
        ds = ray.data.read_parquet(shards.data_uri, filter=expr, filesystem=st.ray_filesystem,
                                   columns=["pair_id", "split", "ok", "ecg", "rpeaks", "image", *shards.labels],
                                   ray_remote_args={"max_retries": MAX_RETRIES})  # Ray's default: without end
        ds = ds.map_batches(_Encode, fn_constructor_args=(to_dict(cfg), shards.image_kind, st.uri, image_key),
                            batch_size=64, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=1),
                            num_cpus=1, **BOUNDED_ACTOR_RETRIES)  # a killed encoder: restarted twice, then fails
        ds.write_parquet(st.uri_of("features", key, "data"), filesystem=st.ray_filesystem,
                         min_rows_per_file=FILE_ROWS, ray_remote_args={"max_retries": MAX_RETRIES},
                         **parquet_options(["pair_id", "split", "ok", *shards.labels]))
    st.write_json({"shards": shards.key, "image_pretrain": image_key, "columns": cols,
                   "seconds": round(time.time() - t0, 2)}, "features", key, "meta.json")
    if verbose:
        print(f"[xmodal] features: encoded train+val images once in {time.time() - t0:.1f}s ({key})")
    return FeatureSet(st, key, shards.labels, cols)
