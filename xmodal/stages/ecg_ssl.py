"""Stage 2 — ECG self-supervised pretraining on training-split ECGs only.

- ``simclr`` (CroMoTEX): two VCG-augmented views (3KG rotation/scaling) -> NT-Xent.
- ``mae`` (ECCL, PTACL): random contiguous time spans are zeroed in the input and the encoder's
  tokens reconstruct the original signal (MSE on the masked samples).

Selects the epoch with the lowest validation loss (validation ECGs, same objective, fixed seed).
"""

from __future__ import annotations

import torch
from torch import nn

from xmodal.augment.views import TwoViews
from xmodal.augment.vcg import VCGAugment
from xmodal.config import ExperimentConfig, SSLConfig, from_dict
from xmodal.data.pipeline import ShardSet, open_split
from xmodal.dist import local_only
from xmodal.losses.ntxent import NTXentLoss
from xmodal.models.heads import ProjectionHead
from xmodal.models.registry import build_ecg_encoder
from xmodal.stages import loop as L
from xmodal.stages.runner import run_stage
from xmodal.stages.store import StageOutput, StageStore, stage_key

STAGE = "ecg_ssl"


class SimCLRNet(nn.Module):
    """ECG encoder + projection head; both views go through one forward (one BN batch)."""

    def __init__(self, cfg: ExperimentConfig, seq_len: int):
        super().__init__()
        self.encoder = build_ecg_encoder(cfg.model, seq_len)
        self.proj = ProjectionHead(self.encoder.out_dim, cfg.model.proj_hidden, cfg.model.proj_dim)

    def forward(self, v1: torch.Tensor, v2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """v1, v2: ``(B, 12, L)`` -> projections ``(B, proj_dim)`` each."""
        z = self.proj(self.encoder(torch.cat([v1, v2]))["embedding"])
        return z[: len(v1)], z[len(v1):]


class MaskedReconNet(nn.Module):
    """ECG encoder + a linear decoder from each token to the samples it covers."""

    def __init__(self, cfg: ExperimentConfig, seq_len: int):
        super().__init__()
        self.encoder = build_ecg_encoder(cfg.model, seq_len)
        self.seq_len = seq_len
        n_tokens = self.encoder(torch.zeros(1, 12, seq_len))["tokens"].shape[1]
        self.patch = -(-seq_len // n_tokens)
        self.decoder = nn.Linear(self.encoder.out_dim, 12 * self.patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: ``(B, 12, L)`` masked input -> reconstruction ``(B, 12, L)``."""
        tok = self.encoder(x)["tokens"]  # (B, N, W)
        b, n, _ = tok.shape
        rec = self.decoder(tok).view(b, n, 12, self.patch).permute(0, 2, 1, 3).reshape(b, 12, n * self.patch)
        return rec[..., : self.seq_len]


def time_mask(x: torch.Tensor, ratio: float, gen: torch.Generator, span: int = 50) -> torch.Tensor:
    """Boolean ``(B, 1, L)`` mask of about ``ratio`` of the samples, in contiguous spans of ``span``."""
    b, _, length = x.shape
    n_spans = max(1, length // span)
    keep = torch.rand(b, n_spans, generator=gen) >= ratio
    return (~keep).repeat_interleave(span, dim=1)[:, None, :length].to(x.device)


def _views(sc: SSLConfig) -> TwoViews:
    return TwoViews(VCGAugment.from_config(sc))


def train_phase(cfg: ExperimentConfig, w: L.Worker, train: dict, val: dict) -> tuple[L.TrainState, torch.optim.Optimizer]:
    """Self-supervised training on in-memory ``ecg`` splits; return the train state (best weights) and
    optimizer."""
    sc = cfg.ecg_ssl
    seed = cfg.seed + cfg.ecg_ssl.seed
    L.seed_worker(w, seed)
    seq_len = train["ecg"].shape[-1]
    mae = sc.method == "mae"
    net = L.prepare(MaskedReconNet(cfg, seq_len) if mae else SimCLRNet(cfg, seq_len))
    ntxent, views = NTXentLoss(tau=sc.tau), _views(sc)
    opt = torch.optim.AdamW(net.parameters(), lr=sc.lr, weight_decay=sc.weight_decay)
    st = L.resume({"net": net}, opt, STAGE)

    def loss_of(model: nn.Module, ecg: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        x = ecg.float()
        if mae:
            m = time_mask(x, sc.mask_ratio, gen)
            rec = model(x.masked_fill(m, 0.0))
            return ((rec.float() - x) ** 2).masked_select(m.expand_as(x)).mean()
        v1, v2 = views(x, generator=gen)
        z1, z2 = model(v1, v2)
        return ntxent({"z1": z1, "z2": z2})["ntxent_loss"]

    for epoch in range(st.epoch, sc.epochs):
        net.train()
        gen = torch.Generator().manual_seed(seed * 7919 + epoch * 31 + w.rank)
        total, n = 0.0, 0
        for batch in L.minibatches(train, sc.batch_size, seed=seed + w.rank, epoch=epoch):
            with w.autocast():
                loss = loss_of(net, batch["ecg"].to(w.device), gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n = total + loss.item(), n + 1
        metrics, score = {"train_loss": total / max(n, 1)}, 0.0
        if w.is_main:
            model = L.unwrap(net).eval()
            vgen = torch.Generator().manual_seed(12345)
            with torch.no_grad(), local_only():  # rank 0 alone: no cross-rank gather
                losses = [loss_of(model, b["ecg"].to(w.device), vgen).item()
                          for b in L.minibatches(val, sc.batch_size, seed=0, epoch=0, shuffle=False)]
            metrics["val_loss"] = sum(losses) / max(len(losses), 1)
            score = -metrics["val_loss"]
        if L.end_epoch(w, st, metrics, score, {"net": net}, opt, sc.patience, STAGE):
            break
    return st, opt


def train_loop(lc: dict) -> None:
    cfg: ExperimentConfig = from_dict(lc["cfg"])
    w = L.setup_worker(cfg.seed + cfg.ecg_ssl.seed)
    train, val = L.load_train_val(w, ["ecg"])
    train_phase(cfg, w, train, val)


def key_for(cfg: ExperimentConfig, shards: ShardSet) -> str:
    m = cfg.model
    own = {"encoder": m.ecg_encoder, "width": m.ecg_width, "layers": m.ecg_layers, "heads": m.ecg_heads,
           "dropout": m.ecg_dropout, "attn_dropout": m.ecg_attn_dropout, "proj": [m.proj_hidden, m.proj_dim],
           "stage": cfg.ecg_ssl, "seed": cfg.seed}
    return stage_key(STAGE, config=own, inputs={}, data=shards.key)


def inputs(shards: ShardSet) -> tuple[dict, dict]:
    """What an ecg_ssl run needs: its datasets (training-split ECGs, validation ECGs) and its stage meta."""
    ds = {s: open_split(shards.data_uri, s, storage=shards.storage, key=shards.key, columns=["ecg"], purpose=STAGE)
          for s in ("train", "val")}
    return ds, {"inputs": {}, "data_fingerprint": shards.key}


def run(cfg: ExperimentConfig, shards: ShardSet, store: StageStore, **kw) -> StageOutput:
    key = key_for(cfg, shards)
    if store.exists(STAGE, key):
        return store.load(STAGE, key)
    ds, meta = inputs(shards)
    return run_stage(STAGE, key, train_loop, cfg=cfg, store=store, datasets=ds, loop_config={}, meta=meta, **kw)


def encoder_state(store: StageStore, key: str) -> dict[str, torch.Tensor]:
    """The pretrained ECG encoder's state dict (for ``align`` / ``finetune`` to start from)."""
    return store.load_submodule(STAGE, key, "encoder.")
