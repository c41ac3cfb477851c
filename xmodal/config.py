"""Typed configuration: the single source of truth for every stage, trial and report.

Each section is a frozen dataclass. ``ExperimentConfig`` nests them. Overrides use dotted keys
(``"loss.tau"``) and are type-checked: unknown keys and wrong types raise :class:`ConfigError`.

    cfg = ExperimentConfig()
    cfg = apply_overrides(cfg, {"loss.tau": 0.05, "align.epochs": 3})
    save_yaml(cfg, "run.yaml"); cfg2 = load_yaml("run.yaml")
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from xmodal.errors import ConfigError
from xmodal.methods import METHODS

# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ECGPreprocessConfig:
    """How a raw WFDB record becomes a model input of shape ``[12, round(fs * seconds)]``.

    Defaults follow the published CroMoTEX setup: 500 Hz -> 100 Hz, 10 s, ``[12, 1000]``.
    """

    fs: int = 100  # target sampling rate (Hz); resampled with scipy.signal.resample_poly
    seconds: float = 10.0  # crop (centre) or zero-pad (end) to this duration
    nan_policy: str = "interpolate"  # "interpolate" (linear, edges held) | "zero"
    baseline: str = "highpass"  # "highpass" (Butterworth, zero-phase) | "median" | "none"
    baseline_cutoff_hz: float = 0.5
    normalize: str = "zscore"  # "zscore" per lead | "minmax" per lead to [-1, 1] | "none"


@dataclass(frozen=True)
class ImagePreprocessConfig:
    """How a DICOM becomes a model input (``[size, size]`` CXR or ``[frames, size, size]`` cine)."""

    size: int = 224
    fit: str = "pad"  # "pad" (keep aspect, zero-pad to square) | "crop" (centre crop to square)
    cine_frames: int = 50  # frames over one cardiac cycle (cine cohorts)


@dataclass(frozen=True)
class DataConfig:
    """Where the cohort is and which label is trained."""

    manifest: str = ""  # Parquet manifest; "" means the synthetic demo cohort
    pathology: str = "cardiomegaly"  # a label column of the manifest
    storage: str = ".cache/xmodal"  # stage + shard cache root: local path or pyarrow.fs URI
    shard_rows: int = 256  # rows per preprocessed Parquet shard
    balanced_sampling: bool = False  # align: class-balanced batches (published: positive fraction 0.25)
    positive_fraction: float = 0.25
    # Fraction of training *subjects* whose labels training may use (seeded by ``seed``); 1 = all. Below 1
    # (labels scarce, pairs plentiful), align also trains on the unlabelled pairs, each its own class.
    # Validation and test keep every label.
    label_fraction: float = 1.0
    # Whose labels image pretraining uses when labels are scarce: "scarce" (the same labelled subjects) or
    # "all" (every training film's label: the image encoder has a labelled set of its own, as CroMoTEX
    # pretrains on all of MIMIC-CXR while the ECG side has few confident labels).
    image_labels: str = "scarce"


@dataclass(frozen=True)
class ModelConfig:
    """Encoders and heads, chosen by registry name."""

    ecg_encoder: str = "cromotex_transformer"
    ecg_width: int = 256  # transformer width (stem output channels)
    ecg_layers: int = 4
    ecg_heads: int = 8
    ecg_dropout: float = 0.1  # residual dropout of the transformer layers
    ecg_attn_dropout: float = 0.0  # attention-probability dropout; 0 keeps the fused attention kernel
    ecg_segments: int = 8  # phase segments T for token pooling (PTACL)
    image_encoder: str = "densenet121"  # "densenet121" | "small_cnn" | "cine_transformer" | "phase_cnn"
    image_width: int = 32  # width of the small encoders (small_cnn, cine/phase encoders)
    image_weights: str = ""  # optional local state-dict file (torchvision densenet121 keys)
    proj_dim: int = 128
    proj_hidden: int = 256


@dataclass(frozen=True)
class LossConfig:
    """The alignment loss and its hyperparameters (what the search explores).

    ``name`` picks the method's loss from the registry: ``ahnp_supcon`` (CroMoTEX),
    ``clip_task`` (ECCL), ``ptacl`` (global + local temporal), ``multi_phase_clip`` (Dual-phase).
    """

    name: str = "ahnp_supcon"
    strategy: str = "topk"  # none | topk | linear | exp
    k: float = 0.075  # top-k fraction of negatives (topk only)
    alpha: float = 4.5  # hard-negative weight (topk, linear, exp)
    beta: float = 2.0  # within-sample positive weight
    tau: float = 0.01
    lambda_task: float = 0.0  # ECCL: total = clip + lambda_task * task loss
    global_loss: str = "clip"  # PTACL: global term (clip | ahnp_supcon)
    sigma: float = 0.1  # PTACL: Gaussian alignment width (phase units); 0 = identity
    lambda_local: float = 1.0  # PTACL: weight of the local temporal term
    lambda_ecg_ed: float = 1.0  # Dual-phase: weights of the (ECG, ED), (ECG, ES) and (ED, ES) CLIP terms,
    lambda_ecg_es: float = 1.0  # normalised to sum to 1
    lambda_ed_es: float = 1.0


@dataclass(frozen=True)
class StageConfig:
    """Optimisation settings of one training stage."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 0  # early stop after this many epochs without val improvement (0 = off)
    seed: int = 0  # added to the experiment seed; the race varies it for align/finetune only


@dataclass(frozen=True)
class SSLConfig(StageConfig):
    """ECG self-supervised pretraining (SimCLR with VCG augmentation, or MAE)."""

    method: str = "simclr"  # simclr | mae
    tau: float = 0.1
    mask_ratio: float = 0.5  # mae only
    vcg_max_angle_deg: float = 45.0
    vcg_scale_min: float = 1.0
    vcg_scale_max: float = 1.5


@dataclass(frozen=True)
class AlignConfig(StageConfig):
    """Cross-modal alignment of the ECG encoder with the frozen image encoder."""

    init: str = "ssl"  # ECG encoder starts from: ssl (published CroMoTEX) | scratch (ablation: the image alone teaches)


@dataclass(frozen=True)
class FinetuneConfig(StageConfig):
    """ECG-only fine-tuning of the encoder + a classification head on the pathology."""

    init: str = "align"  # start from: align (cross-modal) | ssl (ECG-only baseline) | scratch
    augment: bool = True  # time-warp, jitter, lead permutation (as in the CroMoTEX fine-tune stage)
    # Train the head alone on the frozen encoder (a linear probe): with few labels, fine-tuning every
    # weight forgets what SSL and alignment taught (docs/synthetic.md, "Where transfer shows").
    freeze_encoder: bool = False


@dataclass(frozen=True)
class ScalingConfig:
    """Ray Train resources of one stage run."""

    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0  # fractional allowed (e.g. 0.25); 0 with use_gpu means 1
    # Host memory one Train worker may use (GB), checked against an estimate before training; 0 = this
    # node's memory (RAM or cgroup limit) x a safety fraction / the workers that fit on it at once.
    memory_budget_gb: float = 0.0
    # Where a stage's loop runs: "in_process" (the calling process: a Tune trial's, or the driver; one CPU
    # worker, no Ray Train start-up), "ray_train" (a TorchTrainer), or "auto": in process for one CPU
    # worker, Ray Train otherwise (several workers, GPUs).
    launcher: str = "auto"


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one training chain for one pathology depends on."""

    method: str = "cromotex"  # cromotex | eccl | ptacl | dual_phase
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    ecg: ECGPreprocessConfig = field(default_factory=ECGPreprocessConfig)
    image: ImagePreprocessConfig = field(default_factory=ImagePreprocessConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    image_pretrain: StageConfig = field(default_factory=lambda: StageConfig(epochs=10, lr=1e-4))
    ecg_ssl: SSLConfig = field(default_factory=lambda: SSLConfig(epochs=20, lr=1e-3, batch_size=128))
    align: AlignConfig = field(default_factory=lambda: AlignConfig(epochs=20, lr=1e-4, batch_size=128))
    finetune: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(epochs=20, lr=1e-4))
    scaling: ScalingConfig = field(default_factory=ScalingConfig)


# ---------------------------------------------------------------------------------------------
# Dict / YAML conversion with type checking
# ---------------------------------------------------------------------------------------------


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict (tuples become lists, so the result is YAML/JSON friendly)."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        return v

    return conv(cfg)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against annotation ``tp``; allow int -> float and list -> tuple."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for section {tp.__name__}, got {value!r}")
        return _from_dict(tp, value, where)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (typing.Union, types.UnionType):
        for a in typing.get_args(tp):
            try:
                return _coerce(value, a, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} does not match {tp}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {type(value).__name__} {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
        return value
    return value


def _from_dict(cls: type, data: Mapping[str, Any], where: str = "") -> Any:
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
            f"valid keys of {where or 'the config'}: {', '.join(names)}"
        )
    kwargs = {}
    for name in names:
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], f"{where}.{name}" if where else name)
    return cls(**kwargs)


def from_dict(data: Mapping[str, Any], cls: type = ExperimentConfig) -> Any:
    """Build ``cls`` from a (partial) nested dict; missing keys take defaults."""
    return validate(_from_dict(cls, data)) if cls is ExperimentConfig else _from_dict(cls, data)


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """``{"loss.tau": 0.01, ...}`` for every leaf."""
    out: dict[str, Any] = {}
    for k, v in to_dict(cfg).items() if dataclasses.is_dataclass(cfg) else cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def apply_overrides(cfg: Any, overrides: Mapping[str, Any]) -> Any:
    """Return a copy of ``cfg`` with dotted-key overrides applied and type-checked."""
    data = to_dict(cfg)
    for key, value in overrides.items():
        node = data
        parts = key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                valid = ", ".join(sorted(node)) if isinstance(node, dict) else "(not a section)"
                raise ConfigError(f"unknown config key {key!r} (at {'.'.join(parts[: i + 1])!r}); valid: {valid}")
            if i == len(parts) - 1:
                if isinstance(node[part], dict):
                    raise ConfigError(f"config key {key!r} is a section; set one of its fields instead")
                node[part] = value
            else:
                node = node[part]
    return from_dict(data, type(cfg))


def parse_override(text: str) -> tuple[str, Any]:
    """Parse a CLI ``key=value`` (value as YAML: ``3``, ``0.1``, ``true``, ``[1, 2]``, ``topk``)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value, e.g. loss.tau=0.05")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


VALID_CHOICES: dict[str, tuple[str, ...]] = {
    "method": tuple(METHODS),
    "loss.strategy": ("none", "topk", "linear", "exp"),
    "loss.global_loss": ("clip", "ahnp_supcon"),
    "ecg.nan_policy": ("interpolate", "zero"),
    "ecg.baseline": ("highpass", "median", "none"),
    "ecg.normalize": ("zscore", "minmax", "none"),
    "image.fit": ("pad", "crop"),
    "data.image_labels": ("scarce", "all"),
    "ecg_ssl.method": ("simclr", "mae"),
    "align.init": ("ssl", "scratch"),
    "finetune.init": ("align", "ssl", "scratch"),
    "scaling.launcher": ("auto", "in_process", "ray_train"),
}


def validate(cfg: ExperimentConfig) -> ExperimentConfig:
    """Check choices and ranges that types alone cannot express."""
    flat = flatten(cfg)
    for key, choices in VALID_CHOICES.items():
        if flat[key] not in choices:
            raise ConfigError(f"{key}={flat[key]!r} is not one of {', '.join(choices)}")
    if not 0.0 < cfg.loss.k <= 1.0:
        raise ConfigError(f"loss.k={cfg.loss.k} must be a fraction in (0, 1]")
    if cfg.loss.tau <= 0:
        raise ConfigError(f"loss.tau={cfg.loss.tau} must be > 0")
    lambdas = (cfg.loss.lambda_ecg_ed, cfg.loss.lambda_ecg_es, cfg.loss.lambda_ed_es)
    if min(lambdas) < 0 or sum(lambdas) <= 0:
        raise ConfigError(f"loss.lambda_ecg_ed/lambda_ecg_es/lambda_ed_es={lambdas} must be >= 0 with a positive sum")
    if cfg.loss.sigma < 0:
        raise ConfigError(f"loss.sigma={cfg.loss.sigma} must be >= 0")
    if cfg.scaling.num_workers < 1:
        raise ConfigError("scaling.num_workers must be >= 1")
    if cfg.scaling.launcher == "in_process" and (cfg.scaling.num_workers > 1 or cfg.scaling.use_gpu):
        raise ConfigError("scaling.launcher=in_process runs one CPU worker; use auto or ray_train for "
                          f"scaling.num_workers={cfg.scaling.num_workers}, use_gpu={cfg.scaling.use_gpu}")
    if cfg.scaling.memory_budget_gb < 0:
        raise ConfigError(f"scaling.memory_budget_gb={cfg.scaling.memory_budget_gb} must be >= 0 (0 = automatic)")
    if not 0.0 < cfg.data.label_fraction <= 1.0:
        raise ConfigError(f"data.label_fraction={cfg.data.label_fraction} must be in (0, 1]")
    return cfg


def load_yaml(path: str | Path) -> ExperimentConfig:
    """Load an ExperimentConfig from YAML. Top-level ``recommended``, ``metrics`` and ``selection`` blocks
    (a report's recommended.yaml) are ignored."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    data = {k: v for k, v in data.items() if k not in ("metrics", "recommended", "selection")}
    try:
        return from_dict(data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def dump_yaml(cfg: ExperimentConfig, *, header: Mapping[str, Any] | None = None,
              extra: Mapping[str, Any] | None = None, comment: str = "") -> str:
    """YAML text of ``cfg``; ``header`` keys go first (informational), ``extra`` last."""
    parts = []
    if comment:
        parts.append("".join(f"# {line}\n" for line in comment.splitlines()))
    if header:
        parts.append(yaml.safe_dump({"recommended": dict(header)}, sort_keys=False))
    parts.append(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    if extra:
        parts.append(yaml.safe_dump(dict(extra), sort_keys=False))
    return "".join(parts)


def save_yaml(cfg: ExperimentConfig, path: str | Path, **kwargs: Any) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(dump_yaml(cfg, **kwargs))


def config_hash(obj: Any, n: int = 16) -> str:
    """Stable short hash of a config section (or any JSON-able value)."""
    blob = json.dumps(to_dict(obj) if dataclasses.is_dataclass(obj) else obj, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:n]
