"""Stage 4 — ECG-only fine-tuning: projection heads dropped, encoder + classification head on the pathology.

``finetune.init`` picks the starting encoder: ``align`` (the cross-modal model), ``ssl`` (the
ECG-only baseline: same chain without alignment) or ``scratch``. Selects the epoch with the best
validation AUROC; reports validation AUROC, AUPRC and loss every epoch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from xmodal.augment.ecg import Compose, Jitter, LeadPermutation, TimeWarp
from xmodal.config import ExperimentConfig, from_dict
from xmodal.data.pipeline import ShardSet, known, open_split
from xmodal.metrics import binary_metrics
from xmodal.models.heads import ClassificationHead
from xmodal.models.registry import build_ecg_encoder
from xmodal.stages import align, ecg_ssl, labelled
from xmodal.stages import loop as L
from xmodal.stages.image_model import masked_bce
from xmodal.stages.labelled import labelled_filter
from xmodal.stages.runner import run_stage
from xmodal.stages.store import StageOutput, StageStore, stage_key
from xmodal.storage import Storage

STAGE = "finetune"


class ECGClassifier(nn.Module):
    """The inference model: ``(B, 12, L)`` ECG -> ``(B,)`` logit. No image input anywhere."""

    def __init__(self, cfg: ExperimentConfig, seq_len: int):
        super().__init__()
        self.encoder = build_ecg_encoder(cfg.model, seq_len)
        self.head = ClassificationHead(self.encoder.out_dim, 1, dropout=0.1)

    def forward(self, ecg: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(ecg.float())["embedding"]).squeeze(-1)


def _augment() -> Compose:
    return Compose([TimeWarp(), Jitter(), LeadPermutation()])


def train_phase(cfg: ExperimentConfig, w: L.Worker, train: dict, val: dict,
                init: dict[str, torch.Tensor] | None) -> L.TrainState:
    """Fine-tune on in-memory ``ecg``/``label`` splits from the ``init`` encoder state (None: scratch)."""
    sc = cfg.finetune
    seed = cfg.seed + cfg.finetune.seed
    L.seed_worker(w, seed)
    model = ECGClassifier(cfg, train["ecg"].shape[-1])
    if init is not None:
        model.encoder.load_state_dict(init)
    if sc.freeze_encoder:
        model.encoder.requires_grad_(False)
    net = L.prepare(model)
    aug = _augment() if sc.augment else None
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=sc.lr, weight_decay=sc.weight_decay)
    st = L.resume({"net": net}, opt, STAGE)
    for epoch in range(st.epoch, sc.epochs):
        net.train()
        if sc.freeze_encoder:
            L.unwrap(net).encoder.eval()  # frozen: no dropout, batch-norm statistics as trained
        gen = torch.Generator().manual_seed(seed * 4099 + epoch * 13 + w.rank)
        total, n = 0.0, 0
        for batch in L.minibatches(train, sc.batch_size, seed=seed + w.rank, epoch=epoch):
            x = batch["ecg"].float()
            x = aug(x, generator=gen) if aug is not None else x
            with w.autocast():
                loss = masked_bce(net(x.to(w.device)), batch["label"].to(w.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n = total + loss.item(), n + 1
        metrics, score = {"train_loss": total / max(n, 1)}, 0.0
        if w.is_main:
            m = L.unwrap(net).eval()
            logits = L.predict(lambda b: m(b["ecg"]), val, w)
            y = val["label"].numpy()
            vm = binary_metrics(y, logits)
            with torch.no_grad():
                vloss = masked_bce(torch.from_numpy(logits), torch.from_numpy(y)).item()
            metrics.update(val_auroc=vm["auroc"], val_auprc=vm["auprc"], val_loss=vloss)
            score = vm["auroc"] if np.isfinite(vm["auroc"]) else 0.0
        if L.end_epoch(w, st, metrics, score, {"net": net}, opt, sc.patience, STAGE):
            break
    return st


def init_state(lc: dict) -> dict[str, torch.Tensor] | None:
    """The starting encoder named by the loop config (``init_stage``/``init_key``), or None."""
    if not lc["init_stage"]:
        return None
    src = align if lc["init_stage"] == "align" else ecg_ssl
    return src.encoder_state(StageStore(Storage(lc["storage"])), lc["init_key"])


def train_loop(lc: dict) -> None:
    cfg: ExperimentConfig = from_dict(lc["cfg"])
    w = L.setup_worker(cfg.seed + cfg.finetune.seed)
    train, val = L.load_train_val(w, ["ecg", "label"])
    train_phase(cfg, w, train, val, init_state(lc))


def open_labelled(shards: ShardSet, split: str, pathology: str, *, allow_test: bool = False, purpose: str = STAGE,
                  pairs: list[str] | None = None, with_ids: bool = False):
    """ECG + ``label`` (+ ``pair_id`` with ``with_ids``) rows of one split where the pathology label is known
    (and, in training with ``data.label_fraction < 1``, usable: ``pairs`` from
    :func:`xmodal.stages.labelled.labelled_pairs`)."""
    where = known(pathology)
    if (subset := labelled_filter(pairs, split)) is not None:
        where = where & subset
    columns = ["ecg", pathology, *(["pair_id"] if with_ids else [])]
    ds = open_split(shards.data_uri, split, storage=shards.storage, key=shards.key, columns=columns,
                    purpose=purpose, allow_test=allow_test, where=where)
    return ds.rename_columns({pathology: "label"})


def key_for(cfg: ExperimentConfig, shards: ShardSet, init: StageOutput | None) -> str:
    own = {"pathology": cfg.data.pathology, "stage": cfg.finetune, "seed": cfg.seed,
           "encoder": [cfg.model.ecg_encoder, cfg.model.ecg_width, cfg.model.ecg_layers, cfg.model.ecg_heads,
                       cfg.model.ecg_dropout, cfg.model.ecg_attn_dropout], **labelled.key_part(cfg)}
    inputs = {init.stage: init.key} if init else {}
    return stage_key(STAGE, config=own, inputs=inputs, data=shards.key)


def meta_for(shards: ShardSet, init: StageOutput | None) -> dict:
    return {"inputs": {init.stage: init.key} if init else {}, "data_fingerprint": shards.key}


def run(cfg: ExperimentConfig, shards: ShardSet, init: StageOutput | None, store: StageStore, **kw) -> StageOutput:
    key = key_for(cfg, shards, init)
    if store.exists(STAGE, key):
        return store.load(STAGE, key)
    pairs = labelled.labelled_pairs(cfg)
    ds = {s: open_labelled(shards, s, cfg.data.pathology, pairs=pairs) for s in ("train", "val")}
    lc = {"init_stage": init.stage if init else "", "init_key": init.key if init else "",
          "storage": shards.storage.uri}
    return run_stage(STAGE, key, train_loop, cfg=cfg, store=store, datasets=ds, loop_config=lc,
                     meta=meta_for(shards, init), **kw)


def load_classifier(cfg: ExperimentConfig, store: StageStore, key: str, seq_len: int) -> ECGClassifier:
    model = ECGClassifier(cfg, seq_len)
    model.load_state_dict(store.load_state(STAGE, key)["net"])
    return model.eval()
