"""How much host memory a stage's Train worker holds, estimated before training and checked against a budget.

The estimate is rank 0's (it holds the most):

- **split**: its share of the training rows (``rows / num_workers``) and every validation row
  (:func:`xmodal.stages.loop.load_train_val`), from the Parquet footers and the reads' filters;
- **model**: weights, gradients, AdamW's two moments, and the CPU copies of the weights that
  :func:`xmodal.stages.loop.end_epoch` keeps (the best epoch's) and writes (the checkpoint's);
- **batch activations**: one batch and what autograd saves for backward: the stage's model and a dummy
  batch are built on torch's ``meta`` device (no memory, no compute) and the bytes of every tensor that
  ``saved_tensors_hooks`` sees are counted (the loss runs on small CPU stand-ins of the model's
  outputs). On meta, attention takes PyTorch's math path, which saves the attention matrix: the ECG
  stages read about 1.4x what the CPU's fused kernel saves (the safe side). Where meta fails, real
  steps on 2 and 4 rows are measured and extrapolated linearly to the batch size;
- **worker runtime**: the process itself (:data:`RUNTIME`).

Not counted: while a worker reads its rows it briefly holds them twice (the read batches, then their
concatenation); :data:`SAFETY` leaves room for that and for the backward pass's gradient buffers.

A GPU worker's host holds the batch and the weight copies only. The budget: ``scaling.memory_budget_gb``,
or this node's memory (RAM, or this process's cgroup limit) x :data:`SAFETY` / the Train workers that can
run on it at once.

    est = estimate(("image_pretrain",), cfg)
    check(est, budget_for(cfg, concurrent=1))   # ResourceError (one line) when it does not fit
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import operator
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from xmodal.config import ExperimentConfig
from xmodal.errors import ResourceError

GB = 1 << 30
SAFETY = 0.7  # of the node's memory for Train workers; the rest: Ray's object store (Data reads), raylet, driver
UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a huge number
# A Train worker process before it holds anything: Python, torch, Ray's worker (importing what a
# worker imports takes 370 MiB of resident memory on CPU).
RUNTIME = 512 << 20
REAL_ROWS = (2, 4)  # the fallback's measured batches (2, not 1: BatchNorm needs two rows to train)


def gb(n: float) -> str:
    return f"{n / GB:.1f} GB" if n >= GB / 10 else f"{n / (1 << 20):.0f} MB"


@dataclass(frozen=True)
class Shapes:
    """One row of a stage's batch, without the batch dimension."""

    seq_len: int  # ECG samples: [12, seq_len]
    image: tuple[int, ...]  # [S, S] (cxr) or [F, S, S] (cine)
    image_kind: str  # "cxr" | "cine"
    labels: int = 1  # image_pretrain's label columns


def shapes_for(cfg: ExperimentConfig, loop_config: dict | None = None,
               stored: dict[str, tuple[int, ...]] | None = None) -> Shapes:
    """The shapes ``cfg`` configures, or the ``stored`` ones (:func:`stored_shapes`) where known; the
    loop config's ``image_kind``/``labels`` where it has them."""
    from xmodal.methods import method

    lc, stored = loop_config or {}, stored or {}
    kind = lc.get("image_kind") or method(cfg.method).image_kind
    image = stored.get("image") or ((cfg.image.cine_frames,) if kind == "cine" else ()) + (cfg.image.size,) * 2
    seq_len = stored["ecg"][-1] if "ecg" in stored else round(cfg.ecg.fs * cfg.ecg.seconds)
    return Shapes(seq_len, tuple(image), kind, max(1, len(lc.get("labels", ()))))


@dataclass
class Probe:
    """A stage's model, a dummy batch, and its training step split in two: ``forward`` (the model: runs
    on the meta device) and ``loss`` of what forward returns (small: runs on CPU stand-ins, since losses
    use ops without meta kernels, such as autocast on the input's device)."""

    model: nn.Module
    batch: dict[str, torch.Tensor]
    forward: Callable[[nn.Module, dict[str, torch.Tensor]], dict[str, torch.Tensor]]
    loss: Callable[[dict[str, torch.Tensor]], torch.Tensor]


def _bce(out: dict[str, torch.Tensor]) -> torch.Tensor:
    """``masked_bce`` without its data-dependent mask: the same activations."""
    return F.binary_cross_entropy_with_logits(out["logits"].float(), out["targets"])


def _image_pretrain(cfg: ExperimentConfig, sh: Shapes, rows: int) -> Probe:
    from xmodal.stages.image_model import ImageClassifier, ImageModel

    batch = {"image": torch.zeros(rows, *sh.image, dtype=torch.uint8), "labels": torch.zeros(rows, sh.labels)}
    return Probe(ImageClassifier(ImageModel(cfg, sh.image_kind), sh.labels), batch,
                 lambda m, b: {"logits": m(b["image"]), "targets": b["labels"]}, _bce)


def _ecg_ssl(cfg: ExperimentConfig, sh: Shapes, rows: int) -> Probe:
    from xmodal.losses.ntxent import NTXentLoss
    from xmodal.stages.ecg_ssl import MaskedReconNet, SimCLRNet

    ecg = torch.zeros(rows, 12, sh.seq_len, dtype=torch.float16)
    if cfg.ecg_ssl.method == "mae":  # the masked input and its mask, besides the stored rows
        batch = {"ecg": ecg, "x": torch.zeros(rows, 12, sh.seq_len), "mask": torch.zeros(rows, 1, sh.seq_len)}
        return Probe(MaskedReconNet(cfg, sh.seq_len), batch,
                     lambda m, b: {"rec": m(b["x"]), "x": b["x"], "mask": b["mask"]},
                     lambda o: (((o["rec"] - o["x"]) ** 2) * o["mask"]).mean())
    ntxent = NTXentLoss(tau=cfg.ecg_ssl.tau)
    batch = {"ecg": ecg, "v1": torch.zeros(rows, 12, sh.seq_len), "v2": torch.zeros(rows, 12, sh.seq_len)}
    return Probe(SimCLRNet(cfg, sh.seq_len), batch, lambda m, b: dict(zip(("z1", "z2"), m(b["v1"], b["v2"]))),
                 lambda o: ntxent(o)["ntxent_loss"])


def feature_shapes(cfg: ExperimentConfig, sh: Shapes) -> dict[str, tuple[int, ...]]:
    """The image-feature columns align reads, per row: the frozen image model's outputs."""
    from xmodal.stages.features import FEATURE_OF
    from xmodal.stages.image_model import ImageModel

    with torch.no_grad():
        out = ImageModel(cfg, sh.image_kind)(torch.zeros(1, *sh.image, dtype=torch.uint8))
    return {FEATURE_OF[k]: tuple(v.shape[1:]) for k, v in out.items()}


def _align(cfg: ExperimentConfig, sh: Shapes, rows: int) -> Probe:
    from xmodal.data.pipeline import MAX_BEATS
    from xmodal.losses.registry import build_loss
    from xmodal.methods import method
    from xmodal.stages.align import AlignNet
    from xmodal.stages.loop import sum_losses

    feats = feature_shapes(cfg, sh)
    batch = {"ecg": torch.zeros(rows, 12, sh.seq_len, dtype=torch.float16), "label": torch.zeros(rows),
             **{c: torch.zeros(rows, *s) for c, s in feats.items()}}
    if method(cfg.method).temporal:  # PTACL's phase tokens
        batch["rpeaks"] = torch.zeros(rows, MAX_BEATS, dtype=torch.int32)
        batch["bounds"] = torch.arange(cfg.model.ecg_segments + 1).expand(rows, -1).contiguous()
    loss_fn = build_loss(cfg.loss)
    return Probe(AlignNet(cfg, sh.seq_len, {c: s[-1] for c, s in feats.items()}), batch, lambda m, b: m(b),
                 lambda o: sum_losses(loss_fn(o)))


def _finetune(cfg: ExperimentConfig, sh: Shapes, rows: int) -> Probe:
    from xmodal.stages.finetune import ECGClassifier

    batch = {"ecg": torch.zeros(rows, 12, sh.seq_len, dtype=torch.float16),
             "x": torch.zeros(rows, 12, sh.seq_len), "label": torch.zeros(rows)}  # x: the augmented ECG
    return Probe(ECGClassifier(cfg, sh.seq_len), batch, lambda m, b: {"logits": m(b["x"]), "targets": b["label"]},
                 _bce)


# Each stage's model, a dummy batch of ``rows`` rows and its loss: ``(cfg, shapes, rows) -> Probe``.
STAGE_PROBES: dict[str, Callable[[ExperimentConfig, Shapes, int], Probe]] = {
    "image_pretrain": _image_pretrain, "ecg_ssl": _ecg_ssl, "align": _align, "finetune": _finetune,
}

# The stages a train loop trains, by the loop's module (runs that train two stages one after the other).
LOOP_STAGES: dict[str, tuple[str, ...]] = {
    **{s: (s,) for s in STAGE_PROBES},
    "image_pretrain_ecg_ssl": ("image_pretrain", "ecg_ssl"), "align_finetune": ("align", "finetune"),
}


def stages_of(loop: Callable) -> tuple[str, ...]:
    return LOOP_STAGES.get(getattr(loop, "__module__", "").rsplit(".", 1)[-1], ())


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata  # views share it; meta tensors have one too


def saved_bytes(probe: Probe) -> int:
    """Bytes of the tensors autograd saves for backward in one training step of ``probe``: each storage
    once, the weights and the batch itself left out (counted elsewhere). On the meta device the loss
    runs on CPU stand-ins of the forward's outputs."""
    known = {_storage(t) for t in [*probe.model.parameters(), *probe.model.buffers(), *probe.batch.values()]}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = _storage(t)
        if key not in known:
            saved.setdefault(key, t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = probe.forward(probe.model, probe.batch)
        meta = any(v.is_meta for v in out.values())
        with torch.device("cpu") if meta else contextlib.nullcontext():  # stand-ins: zeros, gradient-wanting leaves
            probe.loss({k: torch.zeros(v.shape, dtype=v.dtype, requires_grad=v.requires_grad)
                        for k, v in out.items()} if meta else out)
    return sum(saved.values())


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


@dataclass(frozen=True)
class StageMemory:
    """One stage's model and batch-activation bytes (see the module docstring)."""

    stage: str
    model: int
    activations: int
    note: str = ""


def model_bytes(model: nn.Module, *, gpu: bool, workers: int) -> int:
    params = tensor_bytes(model.parameters())
    state = params + tensor_bytes(model.buffers())
    if gpu:  # the host keeps the best-epoch and checkpoint copies
        return 2 * state
    # the module, the best-epoch and checkpoint copies; gradients, AdamW's two moments (+ DDP's buckets)
    return 3 * state + params * (3 + (workers > 1))


def stage_memory(stage: str, cfg: ExperimentConfig, sh: Shapes) -> StageMemory:
    """``stage``'s model and one batch's activations at ``cfg.<stage>.batch_size`` rows."""
    build, rows = STAGE_PROBES[stage], getattr(cfg, stage).batch_size
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, image_weights=""))  # same sizes
    gpu, note = cfg.scaling.use_gpu, ""
    with torch.random.fork_rng(devices=[]):  # building models draws from the driver's generator
        try:
            with torch.device("meta"):
                probe = build(cfg, sh, rows)
            saved = 0 if gpu else saved_bytes(probe)  # a GPU worker's activations are on the GPU
            model, batch_bytes = probe.model, tensor_bytes(probe.batch.values())
        except Exception as e:  # noqa: BLE001 — an op without a meta kernel
            model, saved, batch_bytes = _measured(build, cfg, sh, rows, gpu)
            note = f"activations measured on {REAL_ROWS} real rows ({type(e).__name__} on meta)"
    return StageMemory(stage, model_bytes(model, gpu=gpu, workers=cfg.scaling.num_workers), batch_bytes + saved,
                       note)


def _measured(build, cfg: ExperimentConfig, sh: Shapes, rows: int, gpu: bool) -> tuple[nn.Module, int, int]:
    """A real model; its saved and batch bytes at ``rows``, linear from :data:`REAL_ROWS` real rows."""
    (lo, hi), sizes = REAL_ROWS, []
    for r in REAL_ROWS:
        probe = build(cfg, sh, r)
        sizes.append(0 if gpu else saved_bytes(probe))
    per_row = (sizes[1] - sizes[0]) / (hi - lo)
    return (probe.model, max(0, round(sizes[0] + per_row * (rows - lo))),
            tensor_bytes(probe.batch.values()) * rows // hi)


def split_bytes(datasets: dict[str, Any], workers: int, filesystem=None) -> tuple[int, list[str]]:
    """Rank 0's rows: ``1 / workers`` of each training dataset (``train``, ``*_train``: split by Ray
    Train) and every row of the others (validation); and the datasets it could not count."""
    total, uncounted = 0, []
    for name, ds in datasets.items():
        size = dataset_size(ds, name.split("_")[-1], filesystem)
        if size is None:
            uncounted.append(name)
            continue
        rows, row_bytes = size
        total += round((math.ceil(rows / workers) if name.split("_")[-1] == "train" else rows) * row_bytes)
    return total, uncounted


def dataset_size(ds, split: str, filesystem=None) -> tuple[int, float] | None:
    """``(rows, bytes per row in memory)`` of a Ray dataset read from Parquet, from the files' metadata:
    rows that pass its read filter (found in Ray's plan; else the rows of ``split`` marked ok), bytes of
    the columns it reads. None for a dataset that is not Parquet files."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    files = [f for f in (ds.input_files() or []) if f.endswith(".parquet")]
    if not files:
        return None
    data = pads.dataset(files, format="parquet", filesystem=filesystem)
    source, expr = _parquet_read(ds)
    if expr is None and {"split", "ok"} <= set(data.schema.names):
        expr = (pc.field("split") == split) & (pc.field("ok") == True)  # noqa: E712 — pyarrow expression
    columns = list(getattr(source, "_projection_map", None) or data.schema.names)
    return data.count_rows(filter=expr), row_bytes(data, columns)


def _parquet_read(ds):
    """The datasource of the read at the root of ``ds``'s plan, and the pyarrow filter it applies
    (``read_parquet(filter=...)``, filters Ray pushed down). Ray internals: None where they differ."""
    op = getattr(getattr(ds, "_logical_plan", None), "dag", None)
    while op is not None and not hasattr(op, "datasource"):
        deps = getattr(op, "input_dependencies", [])
        op = deps[0] if len(deps) == 1 else None
    source = getattr(op, "datasource", None)
    predicate = getattr(source, "_predicate_expr", None)
    exprs = [e for e in (getattr(source, "_scanner_kwargs", {}).get("filter"),
                         None if predicate is None else predicate.to_pyarrow()) if e is not None]
    return source, functools.reduce(operator.and_, exprs) if exprs else None


def row_bytes(data, columns: list[str]) -> float:
    """Bytes one row of ``columns`` takes in memory: exact for fixed-shape types (Ray's tensor columns,
    fixed-size lists, numbers); from the Parquet footer's uncompressed sizes for the others."""
    schema, per_row, unsized = data.schema, 0.0, []
    for c in columns:
        if c not in schema.names:
            continue
        size = _field_bytes(schema.field(c))
        if size is None:
            unsized.append(c)
        else:
            per_row += size
    if unsized:
        for frag in data.get_fragments():
            md = frag.metadata
            if md.num_rows:
                chunks = [md.row_group(i).column(j) for i in range(md.num_row_groups)
                          for j in range(md.num_columns)]
                per_row += sum(ch.total_uncompressed_size for ch in chunks
                               if ch.path_in_schema.split(".")[0] in unsized) / md.num_rows
                break
    return per_row


def _tensor(field) -> tuple[tuple, Any] | None:
    """``(shape, element type)`` of one of Ray's tensor columns: from its type, or from the field's
    metadata where Ray's types are not registered in this process."""
    import pyarrow as pa

    t, meta = field.type, field.metadata or {}
    if isinstance(t, pa.ExtensionType) and isinstance(getattr(t, "shape", None), tuple):
        return t.shape, getattr(t.storage_type, "value_type", None)
    if meta.get(b"ARROW:extension:name", b"").startswith(b"ray.data.arrow_tensor"):
        return tuple(json.loads(meta.get(b"ARROW:extension:metadata", b"[null]"))), getattr(t, "value_type", None)
    return None


def _field_bytes(field) -> int | None:
    tensor = _tensor(field)
    if tensor is None:
        return _type_bytes(field.type)
    shape, inner = tensor[0], _type_bytes(tensor[1])
    return math.prod(shape) * inner if inner and all(isinstance(d, int) for d in shape) else None


def _type_bytes(t) -> int | None:
    import pyarrow as pa

    if t is None or isinstance(t, pa.ExtensionType):
        return None
    if pa.types.is_fixed_size_list(t):
        inner = _type_bytes(t.value_type)
        return None if inner is None else t.list_size * inner
    if pa.types.is_boolean(t):
        return 1  # a torch bool
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return t.bit_width // 8
    return None


def stored_shapes(datasets: dict[str, Any], filesystem=None) -> dict[str, tuple[int, ...]]:
    """Per-row shapes of the tensor columns in the datasets' files: the sizes preprocessing stored
    (``image.size``/``image.cine_frames`` are ceilings, capped by the cohort's own)."""
    import pyarrow.dataset as pads

    shapes: dict[str, tuple[int, ...]] = {}
    for ds in datasets.values():
        files = [f for f in (ds.input_files() or []) if f.endswith(".parquet")][:1]
        for field in pads.dataset(files, format="parquet", filesystem=filesystem).schema if files else []:
            shape = (_tensor(field) or ((None,),))[0]
            if all(isinstance(d, int) for d in shape):
                shapes.setdefault(field.name, tuple(shape))
    return shapes


@dataclass(frozen=True)
class Estimate:
    """What one Train worker (rank 0) of a run holds at its peak, in bytes."""

    stage: str  # "align+finetune" for a run that trains two stages
    heaviest: str  # the stage whose model + activations are the largest
    split: int
    model: int
    activations: int
    notes: tuple[str, ...] = ()
    runtime: int = RUNTIME

    @property
    def total(self) -> int:
        return self.split + self.model + self.activations + self.runtime

    def describe(self) -> str:
        return (f"{gb(self.total)} (split {gb(self.split)} + model {gb(self.model)} + batch activations "
                f"{gb(self.activations)} + worker runtime {gb(self.runtime)})")


def estimate(stages: tuple[str, ...], cfg: ExperimentConfig, *, datasets: dict[str, Any] | None = None,
             loop_config: dict | None = None, filesystem=None, label: str = "") -> Estimate:
    """A run's per-worker peak: every dataset's rows (a run that trains two stages loads them all
    before the first) plus the heaviest stage's model and activations. ``label`` names the run in
    messages (default: its stages joined by ``+``)."""
    split, uncounted = split_bytes(datasets or {}, cfg.scaling.num_workers, filesystem)
    notes = [f"rows of {', '.join(uncounted)} not counted"] if uncounted else []
    sh = shapes_for(cfg, loop_config, stored_shapes(datasets or {}, filesystem))
    parts = []
    for stage in stages:
        try:
            part = stage_memory(stage, cfg, sh)
        except Exception as e:  # noqa: BLE001 — the estimate never stops a run it cannot size
            notes.append(f"{stage} model not sized ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
            continue
        parts.append(part)
        notes += [f"{stage}: {part.note}"] if part.note else []
    label = label or "+".join(stages) or "stage"
    top = max(parts, key=lambda p: p.model + p.activations, default=StageMemory(stages[-1] if stages else label, 0, 0))
    return Estimate(label, top.stage, split, top.model, top.activations, tuple(notes))


@dataclass(frozen=True)
class Budget:
    bytes: int
    source: str  # where it came from, for the message


def budget_for(cfg: ExperimentConfig, *, concurrent: int | None = None,
               node: tuple[int, str] | None = None) -> Budget:
    """``scaling.memory_budget_gb``, or this node's memory x :data:`SAFETY` / ``concurrent`` Train
    workers that share it (default: :func:`workers_at_once`)."""
    if cfg.scaling.memory_budget_gb > 0:
        return Budget(round(cfg.scaling.memory_budget_gb * GB), "scaling.memory_budget_gb")
    total, where = node or node_memory()
    n = max(1, concurrent or workers_at_once(cfg))
    return Budget(round(total * SAFETY / n), f"{where} x {SAFETY} / {n} worker{'s' * (n > 1)} at once")


def node_memory(proc_cgroup: str = "/proc/self/cgroup", cgroup_root: str = "/sys/fs/cgroup") -> tuple[int, str]:
    """``(bytes, what they are)``: this machine's RAM, or its memory cgroup's limit where smaller."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = cgroup_limit(proc_cgroup, cgroup_root)
    return (limit, f"{gb(limit)} cgroup limit") if limit is not None and limit < ram else (ram, f"{gb(ram)} RAM")


def cgroup_limit(proc_cgroup: str = "/proc/self/cgroup", cgroup_root: str = "/sys/fs/cgroup") -> int | None:
    """The smallest memory limit on this process's cgroup and its ancestors (v2 ``memory.max``, v1
    ``memory.limit_in_bytes``), or None where there is none."""
    root, limits = Path(cgroup_root), []
    lines = Path(proc_cgroup).read_text().splitlines() if Path(proc_cgroup).is_file() else []
    for hierarchy, controllers, path in (line.split(":", 2) for line in lines if line.count(":") >= 2):
        if hierarchy == "0" and not controllers:  # v2, mounted at the root or at unified/ (hybrid)
            places = [(root, "memory.max"), (root / "unified", "memory.max")]
        elif "memory" in controllers.split(","):
            places = [(root / "memory", "memory.limit_in_bytes")]
        else:
            continue
        parts = [p for p in path.split("/") if p]
        for base, name in places:
            for depth in range(len(parts) + 1):
                f = base.joinpath(*parts[:depth], name)
                text = f.read_text().strip() if f.is_file() else ""
                if text.isdigit() and int(text) < UNLIMITED:
                    limits.append(int(text))
    return min(limits, default=None)


def workers_at_once(cfg: ExperimentConfig) -> int:
    """Train workers of ``cfg``'s size that this node holds at once (1 without Ray): its Ray CPUs, at
    most its cores (xmodal's local Ray has more logical CPUs than cores on purpose, for Tune functions
    and Data reads; about one training trial per core runs at once, see :mod:`xmodal.search.cli`),
    and its GPUs for GPU workers."""
    import ray

    if not ray.is_initialized():
        return 1
    here = ray.util.get_node_ip_address()
    nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("NodeManagerAddress") == here]
    res = nodes[0].get("Resources", {}) if nodes else ray.cluster_resources()
    s = cfg.scaling
    fit = min(res.get("CPU", 0.0), os.cpu_count() or 1) // max(s.cpus_per_worker, 1e-9)
    if s.use_gpu:
        fit = min(fit, res.get("GPU", 0.0) // (s.gpus_per_worker or 1.0))
    return max(1, int(fit))


def advice(est: Estimate) -> str:
    """What to change, for the part that dominates."""
    fixes = [f"lower {est.heaviest}.batch_size"]
    if est.heaviest == "image_pretrain":
        fixes = ["lower image_pretrain.batch_size, image.size or image.cine_frames",
                 "use a smaller model.image_encoder"]
    if est.split > est.model + est.activations:
        fixes.insert(0, "split the rows over workers on more nodes (scaling.num_workers; rank 0 also holds "
                        "every validation row)")
    return ", ".join(fixes) + " or raise scaling.memory_budget_gb where the node has the memory"


def check(est: Estimate, budget: Budget) -> None:
    """Refuse, in one line, a run whose workers would not fit their budget."""
    if est.total > budget.bytes:
        raise ResourceError(f"{est.stage}: a Train worker would hold about {est.describe()}, over its "
                            f"{gb(budget.bytes)} budget ({budget.source}); {advice(est)}")
