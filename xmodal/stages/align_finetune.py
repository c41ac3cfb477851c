"""Stages 3 + 4 of a trial in one Ray Train run: ``align``, then ``finetune`` from the aligned encoder.

A search trial runs exactly these two stages. Run as two ``TorchTrainer`` runs, it pays Ray Train's
start-up (worker group, process group, dataset split coordinators: about 7 s on a 2-core machine) and
a Ray Data read of the same ECG rows twice. One run loads the rows once (ECG, label, cached image
features) and trains both stages on them; ``finetune`` uses the ECG and label columns alone.

Each stage still has its own key, weights, optimizer state and ``meta.json`` in the store: rank 0
saves ``align`` the moment it finishes, and the driver saves ``finetune`` from the run's last
checkpoint. The run is named ``finetune-<key>``, as ``finetune`` alone would be, and its checkpoints
carry their stage (``phase``), so an interrupted run resumes where it stopped: a run killed during
``finetune`` finds ``align`` in the store when run again, and ``finetune`` alone resumes from the run's
last checkpoint.
"""

from __future__ import annotations

import time

import torch

from xmodal.config import ExperimentConfig, from_dict
from xmodal.data.pipeline import ShardSet
from xmodal.stages import align, finetune
from xmodal.stages import loop as L
from xmodal.stages.features import FeatureSet
from xmodal.stages.runner import fit, save_stage, say_trained
from xmodal.stages.store import StageOutput, StageStore
from xmodal.storage import Storage

def train_loop(lc: dict) -> None:
    cfg: ExperimentConfig = from_dict(lc["cfg"])
    w = L.setup_worker(cfg.seed + cfg.align.seed)
    train, val = align.load_data(lc, w)
    store = StageStore(Storage(lc["storage"]))
    key = lc["align_key"]
    if not store.exists(align.STAGE, key):
        st, opt = align.train_phase(cfg, lc, w, train, val)
        if w.is_main:
            save_stage(store, align.STAGE, key, st, opt.state_dict(), cfg=cfg, meta=lc["align_meta"],
                       seconds=time.time() - lc["submitted_at"])  # Train start-up included
        L.barrier()  # every rank starts fine-tuning from the best aligned encoder that rank 0 saved
    ecg_only = ("ecg", "label")
    usable = ~torch.isnan(train["label"])  # labels scarce: align also trained on unlabelled pairs
    finetune.train_phase(cfg, w, {c: train[c][usable] for c in ecg_only},
                         {c: val[c] for c in ecg_only} if val else {}, align.encoder_state(store, key))


def run(cfg: ExperimentConfig, shards: ShardSet, feats: FeatureSet, ssl: StageOutput | None, store: StageStore, *,
        callbacks: list | None = None, verbose: bool = True) -> tuple[StageOutput, StageOutput]:
    """``(align, finetune)`` outputs: reused from the store, or trained (together where both are missing)."""
    a_key = align.key_for(cfg, feats, align.ssl_input(cfg, ssl))
    if store.exists(align.STAGE, a_key):
        a_out = store.load(align.STAGE, a_key)
        return a_out, finetune.run(cfg, shards, a_out, store, callbacks=callbacks, verbose=verbose)
    a_ref = StageOutput(align.STAGE, a_key)
    f_key = finetune.key_for(cfg, shards, a_ref)
    ds, lc, a_meta = align.inputs(cfg, feats, ssl)
    lc = {**lc, "align_key": a_key, "align_meta": a_meta, "submitted_at": time.time()}
    blob, _ = fit(f"{finetune.STAGE}-{f_key}", train_loop, cfg=cfg, store=store, datasets=ds, loop_config=lc,
                  callbacks=callbacks)
    seconds = time.time() - lc["submitted_at"]  # the same clock as align's
    a_out = store.load(align.STAGE, a_key)
    a_out.reused = False
    f_out = save_stage(store, finetune.STAGE, f_key, blob["train_state"], blob["optimizer"], cfg=cfg,
                       meta=finetune.meta_for(shards, a_ref), seconds=seconds - a_out.meta.get("seconds", 0.0))
    if verbose:
        say_trained(a_out)
        say_trained(f_out)
    return a_out, f_out
