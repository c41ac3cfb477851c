"""Stage 3 — cross-modal alignment: ECG encoder + projection heads against frozen image features.

The method's loss comes from the registry by ``cfg.loss.name``: AHNP SupCon (CroMoTEX), CLIP +
λ·task (ECCL), global + λ_local·local temporal (PTACL), multi-phase CLIP (Dual-phase). Rows whose
pathology label is unknown are left out, unless labels are scarce (``data.label_fraction < 1``): then
every training pair aligns, an unlabelled one as a class of its own (see :mod:`xmodal.stages.labelled`).
Each epoch reports validation AUROC/AUPRC of a linear
probe (logistic regression on this worker's training ECG embeddings, scored on validation) and the
validation alignment loss, so Tune schedulers can stop bad trials early.
"""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import torch
from torch import nn

from xmodal.config import ExperimentConfig, from_dict, to_dict
from xmodal.data.pipeline import MAX_RETRIES, known, log_access
from xmodal.losses.registry import build_loss
from xmodal.methods import method
from xmodal.metrics import binary_metrics
from xmodal.models.phase import phase_pool, rpeak_phase_boundaries
from xmodal.models.heads import ClassificationHead, ProjectionHead
from xmodal.models.registry import build_ecg_encoder
from xmodal.dist import local_only, rank
from xmodal.stages import ecg_ssl, labelled
from xmodal.stages import loop as L
from xmodal.stages.features import FeatureSet
from xmodal.stages.runner import run_stage
from xmodal.stages.store import StageOutput, StageStore, stage_key

STAGE = "align"


class AlignNet(nn.Module):
    """Everything ``align`` trains; ``forward`` returns the dict the method's loss reads."""

    def __init__(self, cfg: ExperimentConfig, seq_len: int, feat_dims: dict[str, int]):
        super().__init__()
        m, self.spec, self.segments = cfg.model, method(cfg.method), cfg.model.ecg_segments
        self.encoder = build_ecg_encoder(m, seq_len)
        w = self.encoder.out_dim
        self.ecg_proj = ProjectionHead(w, m.proj_hidden, m.proj_dim)
        self.img_proj = ProjectionHead(feat_dims["img_feat"], m.proj_hidden, m.proj_dim)
        if self.spec.task_head:
            self.task_head = ClassificationHead(w, 1)
        if self.spec.temporal:
            self.ecg_tok_proj = nn.Linear(w, m.proj_dim)
            self.img_tok_proj = nn.Linear(feat_dims["img_tokens"], m.proj_dim)
        if self.spec.image_view == "phases":
            self.ed_proj = ProjectionHead(feat_dims["ed_feat"], m.proj_hidden, m.proj_dim)
            self.es_proj = ProjectionHead(feat_dims["es_feat"], m.proj_hidden, m.proj_dim)

    def embed(self, ecg: torch.Tensor) -> torch.Tensor:
        """ECG-only pooled embedding ``(B, W)`` (what inference and the probe use)."""
        return self.encoder(ecg.float())["embedding"]

    def forward(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        enc = self.encoder(b["ecg"].float())
        out = {"z_ecg": self.ecg_proj(enc["embedding"]), "z_img": self.img_proj(b["img_feat"].float()),
               "labels": classes(b["label"])}
        if self.spec.task_head:
            out["task_logits"], out["task_targets"] = self.task_head(enc["embedding"]).squeeze(-1), b["label"]
        if self.spec.temporal:
            tok = phase_pool(enc["tokens"], b["bounds"], self.segments)
            out["e_tokens"], out["c_tokens"] = self.ecg_tok_proj(tok), self.img_tok_proj(b["img_tokens"].float())
        if self.spec.image_view == "phases":
            out["z_ed"], out["z_es"] = self.ed_proj(b["ed_feat"].float()), self.es_proj(b["es_feat"].float())
        return out


def classes(label: torch.Tensor) -> torch.Tensor:
    """Contrastive classes ``(B,)`` long from 0/1 labels with NaN for unlabelled rows: a labelled row is
    its label's class, an unlabelled one a class of its own, unique across ranks (its only positive is
    its own pair)."""
    own = 2 + rank() * 2**40 + torch.arange(len(label), device=label.device)  # ranks' batches may differ in size
    return torch.where(torch.isnan(label), own, label.nan_to_num(0.0).long())


def _with_bounds(data: dict[str, torch.Tensor], n_tokens: int, segments: int) -> dict[str, torch.Tensor]:
    """Phase-segment boundaries (token indices) from the stored R-peaks (PTACL)."""
    seq_len = data["ecg"].shape[-1]
    rows = [rpeak_phase_boundaries(r[r >= 0].numpy(), seq_len, n_tokens, segments) for r in data["rpeaks"]]
    return {**data, "bounds": torch.as_tensor(np.stack(rows), dtype=torch.long)}


def probe(train_z: np.ndarray, train_y: np.ndarray, val_z: np.ndarray, val_y: np.ndarray) -> dict[str, float]:
    """Linear probe: logistic regression on embeddings, scored on validation."""
    if len(np.unique(train_y)) < 2:
        return binary_metrics(val_y, np.zeros(len(val_y)))
    from sklearn.linear_model import LogisticRegression  # lazily: see xmodal.metrics

    clf = LogisticRegression(max_iter=300, C=1.0).fit(train_z, train_y)
    return binary_metrics(val_y, clf.decision_function(val_z))


def load_data(lc: dict, w: L.Worker) -> tuple[dict, dict]:
    """This worker's share of the training rows and (rank 0) all validation rows: ECG, label, features."""
    return L.load_train_val(w, lc["columns"])


def train_phase(cfg: ExperimentConfig, lc: dict, w: L.Worker, train: dict, val: dict) -> tuple[L.TrainState, torch.optim.Optimizer]:
    """Train the alignment model on in-memory splits; return the train state (best weights) and optimizer."""
    sc = cfg.align
    seed = cfg.seed + cfg.align.seed
    L.seed_worker(w, seed)
    seq_len = train["ecg"].shape[-1]
    feat_dims = {c: train[c].shape[-1] for c in lc["feature_columns"]}
    model = AlignNet(cfg, seq_len, feat_dims)
    if lc["ssl_key"]:  # align.init == "ssl"; otherwise the encoder starts from its (seeded) random init
        model.encoder.load_state_dict(ecg_ssl.encoder_state(StageStore(_storage(lc)), lc["ssl_key"]))
    if model.spec.temporal:
        n_tok = model.encoder.n_tokens
        train = _with_bounds(train, n_tok, cfg.model.ecg_segments)
        val = _with_bounds(val, n_tok, cfg.model.ecg_segments) if val else val
    net = L.prepare(model)
    loss_fn = build_loss(cfg.loss)
    opt = torch.optim.AdamW(net.parameters(), lr=sc.lr, weight_decay=sc.weight_decay)
    st = L.resume({"net": net}, opt, STAGE)
    for epoch in range(st.epoch, sc.epochs):
        net.train()
        order = None
        if cfg.data.balanced_sampling:
            gen = torch.Generator().manual_seed(seed * 1009 + epoch + 7 * w.rank)
            order = L.balanced_indices(train["label"], L.n_rows(train), cfg.data.positive_fraction, gen)
        total, n = 0.0, 0
        for batch in L.minibatches(train, sc.batch_size, seed=seed + w.rank, epoch=epoch, order=order):
            with w.autocast():
                terms = loss_fn(net(L.to_device(batch, w.device)))
                loss = L.sum_losses(terms)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n = total + loss.item(), n + 1
        metrics, score = {"train_loss": total / max(n, 1)}, 0.0
        if w.is_main:
            m = L.unwrap(net).eval()
            with torch.no_grad(), local_only():  # rank 0 alone: no cross-rank gather
                vl = [L.sum_losses(loss_fn(m(L.to_device(b, w.device)))).item()
                      for b in L.minibatches(val, sc.batch_size, seed=0, epoch=0, shuffle=False)]
            tz, vz = (L.predict(lambda b: m.embed(b["ecg"]), d, w) for d in (train, val))
            ty = train["label"].numpy()
            pm = probe(tz[np.isfinite(ty)], ty[np.isfinite(ty)], vz, val["label"].numpy())
            metrics.update(val_loss=float(np.mean(vl)) if vl else float("nan"), val_auroc=pm["auroc"],
                           val_auprc=pm["auprc"])
            score = pm["auroc"] if np.isfinite(pm["auroc"]) else 0.0
        if L.end_epoch(w, st, metrics, score, {"net": net}, opt, sc.patience, STAGE):
            break
    return st, opt


def train_loop(lc: dict) -> None:
    cfg: ExperimentConfig = from_dict(lc["cfg"])
    w = L.setup_worker(cfg.seed + cfg.align.seed)
    train, val = load_data(lc, w)
    train_phase(cfg, lc, w, train, val)


def _storage(lc: dict):
    from xmodal.storage import Storage

    return Storage(lc["storage"])


def key_for(cfg: ExperimentConfig, feats: FeatureSet, ssl_key: str | None) -> str:
    own = {"method": cfg.method, "pathology": cfg.data.pathology, "loss": cfg.loss, "stage": cfg.align,
           "balanced": [cfg.data.balanced_sampling, cfg.data.positive_fraction], "seed": cfg.seed,
           "proj": [cfg.model.proj_hidden, cfg.model.proj_dim], "segments": cfg.model.ecg_segments,
           **labelled.key_part(cfg)}
    return stage_key(STAGE, config=own, inputs=_inputs(feats, ssl_key), data=feats.key)


def _inputs(feats: FeatureSet, ssl_key: str | None) -> dict[str, str]:
    return {"features": feats.key, **({"ecg_ssl": ssl_key} if ssl_key else {})}


def ssl_input(cfg: ExperimentConfig, ssl: StageOutput | None) -> str | None:
    """The ``ecg_ssl`` key align starts from (None with ``align.init = scratch``)."""
    if cfg.align.init == "scratch":
        return None
    if ssl is None:
        raise ValueError("align.init = 'ssl' needs the ecg_ssl stage output")
    return ssl.key


def open_features(feats: FeatureSet, split: str, pathology: str, columns: list[str], *,
                  pairs: list[str] | None = None):
    """Feature rows of one split with a known ``pathology`` label, that label renamed to ``label``.

    With ``pairs`` (labels scarce) every training row is read, and its label is NaN unless its pair is
    among ``pairs``; other splits are read as without.
    """
    import ray.data

    st = feats.storage
    log_access(st, feats.key, split, STAGE)
    scarce = pairs is not None and split == "train"
    expr = pc.field("split") == split
    expr = expr if scarce else expr & known(pathology)
    cols = [c for c in columns if c != "label"] + [pathology] + (["pair_id"] if scarce else [])
    retries = {"max_retries": MAX_RETRIES}  # the same on both steps, so Ray still fuses them
    ds = ray.data.read_parquet(feats.data_uri, columns=cols, filter=expr, filesystem=st.ray_filesystem,
                               ray_remote_args=retries).rename_columns({pathology: "label"})
    return (ds.map_batches(labelled.hide_labels, fn_kwargs={"pairs": pairs}, batch_format="numpy", **retries)
            if scarce else ds)


def inputs(cfg: ExperimentConfig, feats: FeatureSet, ssl: StageOutput | None) -> tuple[dict, dict, dict]:
    """What an align run needs: its datasets, its loop config and its stage meta."""
    cols = ["ecg", "label", *feats.columns] + (["rpeaks"] if method(cfg.method).temporal else [])
    pairs = labelled.labelled_pairs(cfg)
    ds = {s: open_features(feats, s, cfg.data.pathology, cols, pairs=pairs) for s in ("train", "val")}
    ssl_key = ssl_input(cfg, ssl)
    lc = {"columns": cols, "feature_columns": list(feats.columns), "ssl_key": ssl_key, "storage": feats.storage.uri}
    meta = {"inputs": _inputs(feats, ssl_key), "data_fingerprint": feats.key,
            "loss": to_dict(cfg.loss)}
    return ds, lc, meta


def run(cfg: ExperimentConfig, feats: FeatureSet, ssl: StageOutput | None, store: StageStore,
        **kw) -> StageOutput:
    key = key_for(cfg, feats, ssl_input(cfg, ssl))
    if store.exists(STAGE, key):
        return store.load(STAGE, key)
    ds, lc, meta = inputs(cfg, feats, ssl)
    return run_stage(STAGE, key, train_loop, cfg=cfg, store=store, datasets=ds, loop_config=lc, meta=meta, **kw)


def encoder_state(store: StageStore, key: str) -> dict[str, torch.Tensor]:
    """The aligned ECG encoder's state dict (for ``finetune`` to start from)."""
    return store.load_submodule(STAGE, key, "encoder.")
