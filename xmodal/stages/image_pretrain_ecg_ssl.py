"""Stages 1 + 2 in one Ray Train run: ``image_pretrain``, then ``ecg_ssl`` on the same workers.

The two stages do not depend on each other. Where the cluster has room for both, the chain trains
them side by side as two runs (:func:`xmodal.stages.chain.side_by_side`). Where it has not (one GPU,
or one machine whose logical CPUs outnumber its cores, as xmodal's local Ray does), two runs one after
the other would pay Ray Train's start-up twice: controller, worker group, dataset coordinators, about
25 s of a 2-core machine each. One run reads both stages' rows at once (the ECG reads overlap image
training) and trains one stage after the other.

Each stage keeps its own key, weights, optimizer state and ``meta.json`` in the store: rank 0 saves
``image_pretrain`` the moment it finishes, and the driver saves ``ecg_ssl`` from the run's last
checkpoint. The run is named ``ecg_ssl-<key>``, as ``ecg_ssl`` alone would be, and its checkpoints
carry their stage (``phase``): a run stopped during ``ecg_ssl`` finds ``image_pretrain`` in the store
when run again, and ``ecg_ssl`` alone resumes from the run's last checkpoint.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from xmodal.config import ExperimentConfig, from_dict
from xmodal.data.pipeline import ShardSet
from xmodal.stages import ecg_ssl, image_pretrain
from xmodal.stages import loop as L
from xmodal.stages.runner import fit, save_stage, say_trained
from xmodal.stages.store import StageOutput, StageStore
from xmodal.storage import Storage

SSL_DATASETS = ("ssl_train", "ssl_val")  # next to image_pretrain's "train" / "val"


def train_loop(lc: dict) -> None:
    cfg: ExperimentConfig = from_dict(lc["cfg"])
    w = L.setup_worker(cfg.seed + cfg.image_pretrain.seed)
    store = StageStore(Storage(lc["storage"]))
    key = lc["image_key"]
    # Dataset shards are looked up on this thread (the Train context's); the ECG rows are read in the
    # background while the image stage loads and trains.
    shards = [L.dataset_shard(SSL_DATASETS[0]), L.dataset_shard(SSL_DATASETS[1]) if w.is_main else None]
    with ThreadPoolExecutor(2, thread_name_prefix="xmodal-ssl-read") as pool:
        ecg = [pool.submit(L.read_shard, s, ["ecg"]) for s in shards]
        if not store.exists(image_pretrain.STAGE, key):  # absent unless Ray Train restarted this run
            train, val = L.load_train_val(w, image_pretrain.columns(lc))
            st, opt = image_pretrain.train_phase(cfg, lc, w, train, val)
            del train, val
            if w.is_main:
                save_stage(store, image_pretrain.STAGE, key, st, opt.state_dict(), cfg=cfg, meta=lc["image_meta"],
                           seconds=time.time() - lc["submitted_at"])  # Train start-up included
            L.barrier()
        ssl_train, ssl_val = (f.result() for f in ecg)
    ecg_ssl.train_phase(cfg, w, ssl_train, ssl_val)


def run(cfg: ExperimentConfig, shards: ShardSet, store: StageStore, *, verbose: bool = True,
        concurrent_workers: int | None = None) -> tuple[StageOutput, StageOutput]:
    """``(image_pretrain, ecg_ssl)`` outputs: reused from the store, or trained (in one run where both
    are missing). ``concurrent_workers``: the workers sharing this node's memory meanwhile (memory budget;
    default: as many as fit in its CPUs)."""
    i_key, s_key = image_pretrain.key_for(cfg, shards), ecg_ssl.key_for(cfg, shards)
    if store.exists(image_pretrain.STAGE, i_key) or store.exists(ecg_ssl.STAGE, s_key):
        return (image_pretrain.run(cfg, shards, store, verbose=verbose),
                ecg_ssl.run(cfg, shards, store, verbose=verbose))
    image_pretrain.check_weights(cfg)
    i_ds, lc, i_meta = image_pretrain.inputs(cfg, shards)
    s_ds, s_meta = ecg_ssl.inputs(shards)
    datasets = {**i_ds, SSL_DATASETS[0]: s_ds["train"], SSL_DATASETS[1]: s_ds["val"]}
    lc = {**lc, "image_key": i_key, "image_meta": i_meta, "storage": shards.storage.uri,
          "submitted_at": time.time()}
    blob, _ = fit(f"{ecg_ssl.STAGE}-{s_key}", train_loop, cfg=cfg, store=store, datasets=datasets, loop_config=lc,
                  concurrent_workers=concurrent_workers, verbose=verbose)
    seconds = time.time() - lc["submitted_at"]  # the same clock as image_pretrain's
    i_out = store.load(image_pretrain.STAGE, i_key)
    i_out.reused = False
    s_out = save_stage(store, ecg_ssl.STAGE, s_key, blob["train_state"], blob["optimizer"], cfg=cfg, meta=s_meta,
                       seconds=seconds - i_out.meta.get("seconds", 0.0))
    if verbose:
        say_trained(i_out)
        say_trained(s_out)
    return i_out, s_out
