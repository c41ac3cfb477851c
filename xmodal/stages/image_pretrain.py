"""Stage 1 — supervised image-encoder pretraining on every label of the cohort (masked multi-label BCE).

One pretrain serves all pathologies of a cohort (the labels are its outputs), so a per-pathology
search reuses it. Selects the epoch with the best mean validation AUROC over labels.
"""

from __future__ import annotations

import numpy as np
import torch

from xmodal.config import ExperimentConfig, from_dict
from xmodal.data.pipeline import ShardSet, open_split
from xmodal.metrics import binary_metrics
from xmodal.models.registry import build_image_encoder
from xmodal.models.weights import weights_digest
from xmodal.stages import labelled
from xmodal.stages import loop as L
from xmodal.stages.image_model import ImageClassifier, ImageModel, image_mode, masked_bce
from xmodal.stages.runner import run_stage
from xmodal.stages.store import StageOutput, StageStore, stage_key

STAGE = "image_pretrain"


def train_phase(cfg: ExperimentConfig, lc: dict, w: L.Worker, train: dict, val: dict) -> tuple[L.TrainState, torch.optim.Optimizer]:
    """Train the image classifier on in-memory splits (``image`` + one column per label); return the
    train state (best weights) and optimizer."""
    sc = cfg.image_pretrain
    labels = lc["labels"]
    seed = cfg.seed + cfg.image_pretrain.seed
    L.seed_worker(w, seed)
    stack = lambda d: torch.stack([d[c] for c in labels], 1)  # noqa: E731  (B, n_labels)

    net = L.prepare(ImageClassifier(ImageModel(cfg, lc["image_kind"]), len(labels)))
    opt = torch.optim.AdamW(net.parameters(), lr=sc.lr, weight_decay=sc.weight_decay)
    st = L.resume({"net": net}, opt, STAGE)
    for epoch in range(st.epoch, sc.epochs):
        net.train()
        total, n = 0.0, 0
        for batch in L.minibatches(train, sc.batch_size, seed=seed + w.rank, epoch=epoch):
            batch = L.to_device(batch, w.device)
            with w.autocast():
                logits = net(batch["image"])
                loss = masked_bce(logits, stack(batch))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n = total + loss.item(), n + 1
        metrics, score = {"train_loss": total / max(n, 1)}, 0.0
        if w.is_main:
            net.eval()
            pred = L.predict(lambda b: L.unwrap(net)(b["image"]), val, w)
            y = stack(val).numpy()
            per = {c: binary_metrics(y[:, i], pred[:, i]) for i, c in enumerate(labels)}
            for c, m in per.items():
                metrics[f"val_auroc_{c}"] = m["auroc"]
            score = float(np.nanmean([m["auroc"] for m in per.values()]))
            metrics["val_auroc"] = score
        if L.end_epoch(w, st, metrics, score, {"net": net}, opt, sc.patience, STAGE):
            break
    return st, opt


def columns(lc: dict) -> list[str]:
    return ["image", *lc["labels"]]


def train_loop(lc: dict) -> None:
    cfg: ExperimentConfig = from_dict(lc["cfg"])
    w = L.setup_worker(cfg.seed + cfg.image_pretrain.seed)
    train, val = L.load_train_val(w, columns(lc))
    train_phase(cfg, lc, w, train, val)


def key_for(cfg: ExperimentConfig, shards: ShardSet) -> str:
    m = cfg.model
    weights = weights_digest(m.image_weights) if m.image_weights else ""  # the file's content, not its path
    # the image model's view, not the method: ECCL and PTACL (both "cine") share one image_pretrain
    own = {"method_view": image_mode(cfg, shards.image_kind), "image_encoder": m.image_encoder,
           "image_width": m.image_width, "image_weights": weights, "segments": m.ecg_segments,
           "stage": cfg.image_pretrain, "seed": cfg.seed, **labelled.image_key_part(cfg)}
    return stage_key(STAGE, config=own, inputs={}, data=shards.key)


def check_weights(cfg: ExperimentConfig) -> None:
    """Load ``model.image_weights`` into the encoder here, in the driver: a file that does not fit stops
    the run with one line naming it, before a Ray Train run starts (inside a worker it would be retried)."""
    if cfg.model.image_weights:
        build_image_encoder(cfg.model)


def inputs(cfg: ExperimentConfig, shards: ShardSet) -> tuple[dict, dict, dict]:
    """What an image_pretrain run needs: its datasets, its loop config and its stage meta."""
    pairs = labelled.image_pairs(cfg)  # None: every training label (see data.image_labels)
    lc = {"labels": list(shards.labels), "image_kind": shards.image_kind}
    ds = {s: open_split(shards.data_uri, s, storage=shards.storage, key=shards.key, columns=columns(lc),
                        purpose=STAGE, where=labelled.labelled_filter(pairs, s)) for s in ("train", "val")}
    return ds, lc, {"inputs": {}, "data_fingerprint": shards.key, "labels": list(shards.labels)}


def run(cfg: ExperimentConfig, shards: ShardSet, store: StageStore, **kw) -> StageOutput:
    key = key_for(cfg, shards)
    if store.exists(STAGE, key):
        return store.load(STAGE, key)
    check_weights(cfg)
    ds, lc, meta = inputs(cfg, shards)
    return run_stage(STAGE, key, train_loop, cfg=cfg, store=store, datasets=ds, loop_config=lc, meta=meta, **kw)


def load_image_model(cfg: ExperimentConfig, image_kind: str, store: StageStore, key: str) -> ImageModel:
    """The pretrained image encoder (frozen use: eval mode, no grad)."""
    model = ImageModel(cfg, image_kind)
    model.load_state_dict(store.load_submodule(STAGE, key, "image."))
    return model.eval().requires_grad_(False)


def encoder_state(store: StageStore, key: str) -> dict[str, torch.Tensor]:
    """The pretrained encoder's state dict alone, in the format ``model.image_weights`` loads (no head)."""
    return store.load_submodule(STAGE, key, "image.encoder.")
