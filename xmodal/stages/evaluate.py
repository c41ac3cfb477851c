"""Explicit evaluation of fine-tuned ECG classifiers on one split, with bootstrap 95 % CIs.

The only code path that may open the test split (``allow_test=True``). Several models (e.g. the
recommended config's seeds, the published defaults, the ECG-only baseline) are scored in one pass
over the split, and every opening is logged in the split-access log, so tests can assert that
searches and stages never read the test split on their own.

A test pass is recorded (labels and each model's logits, no identifiers) under

    evaluations/<key>.json          key: the shards, the pathology and the set of models scored

so the same final evaluation asked again (a resumed search, ``train --evaluate-test`` twice) returns
its recorded result and does not open the test split a second time.
"""

from __future__ import annotations

import numpy as np
import torch

from xmodal.config import ExperimentConfig, config_hash
from xmodal.data.pipeline import ShardSet
from xmodal.metrics import with_ci
from xmodal.stages import finetune
from xmodal.stages.store import StageStore


def _iter_split(shards: ShardSet, pathology: str, split: str):
    """Batches ``{"ecg": (B, 12, L), "label": (B,), "pair_id": (B,) str}`` of the split's known-label rows.

    Ray Data does not promise the same row order on two passes; callers sort by ``pair_id`` (see
    :func:`_by_pair`) so that logits of models scored in different passes line up row for row."""
    purpose = "final_evaluation" if split == "test" else "evaluation"
    ds = finetune.open_labelled(shards, split, pathology, allow_test=split == "test", purpose=purpose, with_ids=True)
    for b in ds.iter_batches(batch_size=256, batch_format="numpy"):
        yield {"ecg": torch.tensor(b["ecg"]), "label": torch.tensor(b["label"]),  # copies: Arrow's are read-only
               "pair_id": b["pair_id"].astype(str)}


def _by_pair(ids: list[np.ndarray], *columns: list[np.ndarray]) -> list[np.ndarray]:
    """Concatenate each column's batches and put the rows in ``pair_id`` order."""
    order = np.argsort(np.concatenate(ids), kind="stable") if ids else np.zeros(0, dtype=int)
    return [np.concatenate(c)[order] if c else np.zeros(0, dtype=np.float32) for c in columns]


def predict_groups(shards: ShardSet, store: StageStore, groups: dict[str, list[tuple[str, ExperimentConfig]]], *,
                   split: str, n_boot: int = 1000) -> dict[str, dict]:
    """Score every group's fine-tuned models, ``(finetune key, config)`` pairs, on ``split`` in one pass.

    Returns per group: ``labels (N,)``, ``scores (N,)`` (mean logit over the group's members),
    ``metrics`` of that ensemble with CIs and the members' AUROC/AUPRC mean and SD (the seed spread).
    :func:`xmodal.stages.chain.predict_many` takes configs and finds their keys.
    """
    pathology = next(iter(groups.values()))[0][1].data.pathology
    configs = {k: c for members in groups.values() for k, c in members}
    y, logits = model_logits(shards, store, configs, pathology, split)
    out = {}
    for g, members in groups.items():
        member = [logits[k] for k, _ in members]
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


def model_logits(shards: ShardSet, store: StageStore, models: dict[str, ExperimentConfig], pathology: str,
                 split: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``labels (N,)`` and ``{finetune key: logits (N,)}`` of ``models`` (finetune key -> its config) on
    ``split``, in one pass. A test pass is recorded; the same models asked again read the record."""
    record = ("evaluations", config_hash({"shards": shards.key, "pathology": pathology,
                                          "models": sorted(models)}) + ".json")
    st = shards.storage
    if split == "test" and st.exists(*record):
        rec = st.read_json(*record)
        return np.asarray(rec["labels"], dtype=np.float32), {k: np.asarray(v, dtype=np.float32)
                                                             for k, v in rec["logits"].items()}
    nets: dict[str, torch.nn.Module] = {}
    ids: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    parts: dict[str, list[np.ndarray]] = {k: [] for k in models}
    with torch.no_grad():
        for b in _iter_split(shards, pathology, split):
            x = b["ecg"].float()
            if not nets:
                nets = {k: finetune.load_classifier(c, store, k, x.shape[-1]) for k, c in models.items()}
            ids.append(b["pair_id"])
            ys.append(b["label"].numpy())
            for k, m in nets.items():
                parts[k].append(m(x).numpy())
    keys = list(parts)
    y, *cols = _by_pair(ids, ys, *(parts[k] for k in keys))
    logits = dict(zip(keys, cols))
    if split == "test":
        st.write_json({"split": split, "pathology": pathology, "labels": y.tolist(),
                       "logits": {k: v.tolist() for k, v in logits.items()}}, *record)
    return y, logits


@torch.no_grad()
def embed_split(cfg: ExperimentConfig, shards: ShardSet, encoder_states: list[dict], *, split: str = "val"):
    """``(labels, emb_0, emb_1, ...)``: pooled ECG embeddings of ``split`` under each encoder state."""
    from xmodal.models.registry import build_ecg_encoder

    encs, ids, ys, embs = None, [], [], None
    for b in _iter_split(shards, cfg.data.pathology, split):
        x = b["ecg"].float()
        if encs is None:
            encs = []
            for s in encoder_states:
                e = build_ecg_encoder(cfg.model, x.shape[-1])
                e.load_state_dict(s)
                encs.append(e.eval())
            embs = [[] for _ in encs]
        ids.append(b["pair_id"])
        ys.append(b["label"].numpy())
        for i, e in enumerate(encs):
            embs[i].append(e(x)["embedding"].numpy())
    return tuple(_by_pair(ids, ys, *embs))


def evaluate(cfg: ExperimentConfig, shards: ShardSet, store: StageStore, finetune_key: str, split: str,
             *, n_boot: int = 1000) -> dict[str, float]:
    """AUROC/AUPRC with bootstrap CIs of one fine-tuned model on ``split``."""
    y, logits = model_logits(shards, store, {finetune_key: cfg}, cfg.data.pathology, split)
    return with_ci(y, logits[finetune_key], n_boot=n_boot, seed=cfg.seed)


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
