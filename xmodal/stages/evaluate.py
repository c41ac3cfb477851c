"""Explicit evaluation of fine-tuned ECG classifiers on one split, with bootstrap 95 % CIs.

The only code path that may open the test split (``allow_test=True``). Several models (e.g. the
recommended config's seeds, the published defaults, the ECG-only baseline) are scored in one pass
over the split, and every opening is logged in the split-access log, so tests can assert that
searches and stages never read the test split on their own.
"""

from __future__ import annotations

import numpy as np
import torch

from xmodal.config import ExperimentConfig
from xmodal.data.pipeline import ShardSet
from xmodal.metrics import with_ci
from xmodal.stages import finetune
from xmodal.stages.store import StageStore


def _iter_split(shards: ShardSet, pathology: str, split: str):
    purpose = "final_evaluation" if split == "test" else "evaluation"
    ds = finetune.open_labelled(shards, split, pathology, allow_test=split == "test", purpose=purpose)
    yield from ds.iter_torch_batches(batch_size=256, device="cpu")


def _finetune_key(cfg: ExperimentConfig, shards: ShardSet) -> str:
    from xmodal.stages.chain import run_chain

    return run_chain(cfg, shards=shards, verbose=False).stages["finetune"].key  # cached: trains nothing


@torch.no_grad()
def predict_many(shards: ShardSet, store: StageStore, groups: dict[str, list[ExperimentConfig]], *,
                 split: str, n_boot: int = 1000) -> dict[str, dict]:
    """Score every config's fine-tuned model on ``split`` in one pass.

    Returns per group: ``labels (N,)``, ``scores (N,)`` (mean logit over the group's members),
    ``metrics`` of that ensemble with CIs, and ``per_member`` AUROC/AUPRC (the seed spread).
    """
    pathology = next(iter(groups.values()))[0].data.pathology
    keys = {g: [_finetune_key(c, shards) for c in cfgs] for g, cfgs in groups.items()}
    models: dict[str, list] = {}
    ys: list[np.ndarray] = []
    logits: dict[str, list[list[np.ndarray]]] = {g: [[] for _ in cfgs] for g, cfgs in groups.items()}
    for b in _iter_split(shards, pathology, split):
        x = b["ecg"].float()
        if not models:
            models = {g: [finetune.load_classifier(c, store, k, x.shape[-1]) for c, k in zip(groups[g], keys[g])]
                      for g in groups}
        ys.append(b["label"].numpy())
        for g, ms in models.items():
            for i, m in enumerate(ms):
                logits[g][i].append(m(x).numpy())
    y = np.concatenate(ys) if ys else np.zeros(0)
    out = {}
    for g, per in logits.items():
        member = [np.concatenate(p) if p else np.zeros(0) for p in per]
        score = np.mean(member, axis=0)
        per_member = [with_ci(y, s, n_boot=0) for s in member]
        out[g] = {"labels": y, "scores": score, "metrics": {
            **with_ci(y, score, n_boot=n_boot),
            "seed_auroc_mean": float(np.mean([m["auroc"] for m in per_member])),
            "seed_auroc_sd": float(np.std([m["auroc"] for m in per_member])),
            "seed_auprc_mean": float(np.mean([m["auprc"] for m in per_member])),
            "seed_auprc_sd": float(np.std([m["auprc"] for m in per_member])),
            "n_seeds": len(member)}}
    return out


@torch.no_grad()
def embed_split(cfg: ExperimentConfig, shards: ShardSet, encoder_states: list[dict], *, split: str = "val"):
    """``(labels, emb_0, emb_1, ...)``: pooled ECG embeddings of ``split`` under each encoder state."""
    from xmodal.models.registry import build_ecg_encoder

    encs, ys, embs = None, [], None
    for b in _iter_split(shards, cfg.data.pathology, split):
        x = b["ecg"].float()
        if encs is None:
            encs = []
            for s in encoder_states:
                e = build_ecg_encoder(cfg.model, x.shape[-1])
                e.load_state_dict(s)
                encs.append(e.eval())
            embs = [[] for _ in encs]
        ys.append(b["label"].numpy())
        for i, e in enumerate(encs):
            embs[i].append(e(x)["embedding"].numpy())
    return (np.concatenate(ys), *[np.concatenate(e) for e in embs])


def evaluate(cfg: ExperimentConfig, shards: ShardSet, store: StageStore, finetune_key: str, split: str,
             *, n_boot: int = 1000) -> dict[str, float]:
    """AUROC/AUPRC with bootstrap CIs of one fine-tuned model on ``split``."""
    ys, logits = [], []
    model = None
    with torch.no_grad():
        for b in _iter_split(shards, cfg.data.pathology, split):
            x = b["ecg"].float()
            model = model or finetune.load_classifier(cfg, store, finetune_key, x.shape[-1])
            ys.append(b["label"].numpy())
            logits.append(model(x).numpy())
    y = np.concatenate(ys) if ys else np.zeros(0)
    return with_ci(y, np.concatenate(logits) if logits else np.zeros(0), n_boot=n_boot, seed=cfg.seed)


@torch.no_grad()
def evaluate_image_only(cfg: ExperimentConfig, shards: ShardSet, store: StageStore, image_key: str, split: str = "val",
                        *, n_boot: int = 1000) -> dict[str, float]:
    """The pretrained image classifier alone on ``split`` (the upper reference the ECG cannot see at
    inference): AUROC/AUPRC of its ``cfg.data.pathology`` logit, with bootstrap CIs. Never the test split."""
    from xmodal.data.pipeline import known, open_split
    from xmodal.stages.image_model import ImageClassifier, ImageModel
    from xmodal.stages.image_pretrain import STAGE

    if split == "test":
        raise PermissionError("the image-only reference is a validation figure; the test split is not read here")
    labels, pathology = list(shards.labels), cfg.data.pathology
    net = ImageClassifier(ImageModel(cfg, shards.image_kind), len(labels))
    net.load_state_dict(store.load_state(STAGE, image_key)["net"])
    net.eval()
    ds = open_split(shards.data_uri, split, storage=shards.storage, key=shards.key, columns=["image", pathology],
                    purpose="evaluation", where=known(pathology))
    ys, logits = [], []
    for b in ds.iter_torch_batches(batch_size=256, device="cpu"):
        ys.append(b[pathology].numpy())
        logits.append(net(b["image"])[:, labels.index(pathology)].numpy())
    y = np.concatenate(ys) if ys else np.zeros(0)
    return with_ci(y, np.concatenate(logits) if logits else np.zeros(0), n_boot=n_boot, seed=cfg.seed)
