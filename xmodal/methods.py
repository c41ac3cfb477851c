"""What each method is, in one place: ``cfg.method`` -> :class:`Method`.

Every layer reads this registry: the CLI (``--method`` sets the image encoder, the loss, its published
defaults and the sizes of ``--smoke-test`` / the demo), the chain (which image kind a cohort must
hold), ``align`` (which heads the loss needs), the search space (which settings are sampled) and the
report (which settings head ``recommended.yaml``).

    spec = METHODS["ptacl"]
    cfg = apply_overrides(cfg, spec.overrides("smoke"))   # encoder, loss, defaults, smoke sizes
    spec.searched                                         # ("loss.strategy", ..., "loss.sigma", ...)

Adding a method = one entry here, its loss in :mod:`xmodal.losses.registry` and, if its image view is
new, a mode in :mod:`xmodal.stages.image_model`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from xmodal.errors import ConfigError

SIZES = ("smoke", "demo", "published")
LR_KEY = "align.lr"

# CroMoTEX's published AHNP setting (Rahman et al. 2025): topk, k = 0.075, α = 4.5, β = 2, τ = 0.01.
_AHNP = {"loss.strategy": "topk", "loss.k": 0.075, "loss.alpha": 4.5, "loss.beta": 2.0, "loss.tau": 0.01}
_AHNP_KEYS = ("loss.strategy", "loss.k", "loss.alpha", "loss.beta", "loss.tau")
# The image side of each budget (the presets hold the rest: ECG encoder, epochs, batches). CXR: a small
# CNN at 32/64 px for smoke/demo, DenseNet-121 at 224 px published. Cines: the smoke and demo cohorts
# hold 32-64 px cines; 16 frames resolve the cardiac phases that PTACL's local loss aligns
# (T = model.ecg_segments) and Dual-phase's end-systolic frame. Preprocessing never upsamples: these
# sizes are ceilings (xmodal.data.pipeline).
_CXR_SIZES = {"smoke": {"image.size": 32, "model.image_encoder": "small_cnn", "model.image_width": 8},
              "demo": {"image.size": 64, "model.image_encoder": "small_cnn", "model.image_width": 16},
              "published": {"image.size": 224, "model.image_encoder": "densenet121"}}


def _cine_sizes(encoder: str) -> dict[str, dict[str, Any]]:
    return {"smoke": {"image.size": 32, "image.cine_frames": 16, "model.image_encoder": encoder,
                      "model.image_width": 8},
            "demo": {"image.size": 48, "image.cine_frames": 16, "model.image_encoder": encoder,
                     "model.image_width": 16},
            "published": {"image.size": 224, "image.cine_frames": 50, "model.image_encoder": encoder,
                          "model.image_width": 32}}


def _frozen(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(d))


def _sizes(sizes: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Mapping[str, Any]]:
    assert set(sizes) == set(SIZES), sizes
    return _frozen({k: _frozen(v) for k, v in sizes.items()})


@dataclass(frozen=True)
class Method:
    """One published method: its data, encoders, loss, defaults, sizes and search space.

    ``defaults`` are dotted config overrides: the published values of the searched settings (what the
    search evaluates first) plus structural choices the loss needs (PTACL's global term). ``searched``
    lists the dotted keys the search samples, in order; every one of them is read by the loss or is the
    alignment learning rate. ``sizes`` holds the size-specific overrides of each budget on top of the
    size's preset (``smoke``/``demo`` YAML, or the published :class:`ExperimentConfig` defaults).
    """

    name: str
    paper: str
    image_kind: str  # the manifest's image_kind: "cxr" | "cine"
    image_view: str  # what the image model encodes: "cxr" | "cine" (frames + tokens) | "phases" (ED + ES)
    loss: str  # LossConfig.name
    encoders: tuple[str, ...]  # image encoders that produce the view; the first is the published one
    defaults: Mapping[str, Any]
    searched: tuple[str, ...]
    sizes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    task_head: bool = False  # align trains a classification head next to the projection (ECCL)
    temporal: bool = False  # align pools ECG phase tokens against cine phase tokens (PTACL)

    def overrides(self, size: str | None = None, *, image_encoder: str = "") -> dict[str, Any]:
        """Dotted overrides that make a config this method: its loss and published defaults, and the
        ``size`` budget's image sizes and encoder. ``size=None`` keeps the base config's sizes; its
        ``image_encoder`` is kept too when this method can use it, else the published one is set."""
        if size is not None and size not in SIZES:
            raise ConfigError(f"unknown size {size!r}; valid: {', '.join(SIZES)}")
        out = {"method": self.name, "loss.name": self.loss, **self.defaults}
        if size is not None:
            out.update(self.sizes[size])
        elif image_encoder not in self.encoders:
            out["model.image_encoder"] = self.encoders[0]
        return out

    def published_point(self, lr: float) -> dict[str, Any]:
        """The published defaults of the searched settings as a search point (``align.lr`` = ``lr``)."""
        point = {k: v for k, v in self.defaults.items() if k in self.searched}
        return {**point, LR_KEY: lr}

    def applies(self, key: str, values: Mapping[str, Any]) -> bool:
        """Whether the searched ``key`` is used at the setting ``values`` (AHNP's k only for topk,
        α for every strategy but none)."""
        strategy = values.get("loss.strategy")
        if key == "loss.k":
            return strategy == "topk"
        if key == "loss.alpha":
            return strategy != "none"
        return key in self.searched


METHODS: Mapping[str, Method] = _frozen({m.name: m for m in (
    Method("cromotex", "CroMoTEX (Rahman et al. 2025)", "cxr", "cxr", "ahnp_supcon", ("densenet121", "small_cnn"),
           defaults=_frozen(_AHNP), searched=(*_AHNP_KEYS, LR_KEY), sizes=_sizes(_CXR_SIZES)),
    Method("eccl", "ECCL (Turgut et al. 2025)", "cine", "cine", "clip_task", ("cine_transformer",),
           defaults=_frozen({"loss.tau": 0.1, "loss.lambda_task": 1.0}),
           searched=("loss.tau", "loss.lambda_task", LR_KEY), task_head=True,
           sizes=_sizes(_cine_sizes("cine_transformer"))),
    # xmodal's PTACL uses the AHNP SupCon as its global term (the paper's is CLIP: loss.global_loss=clip).
    Method("ptacl", "PTACL (Selivanov et al. 2025)", "cine", "cine", "ptacl", ("cine_transformer",),
           defaults=_frozen({**_AHNP, "loss.global_loss": "ahnp_supcon", "loss.sigma": 0.1, "loss.lambda_local": 1.0}),
           searched=(*_AHNP_KEYS, "loss.sigma", "loss.lambda_local", LR_KEY), temporal=True,
           sizes=_sizes(_cine_sizes("cine_transformer"))),
    Method("dual_phase", "Dual-phase ECG-CMR", "cine", "phases", "multi_phase_clip", ("phase_cnn", "small_cnn"),
           defaults=_frozen({"loss.tau": 0.1, "loss.lambda_ecg_ed": 1.0, "loss.lambda_ecg_es": 1.0,
                             "loss.lambda_ed_es": 1.0}),
           searched=("loss.tau", "loss.lambda_ecg_ed", "loss.lambda_ecg_es", "loss.lambda_ed_es", LR_KEY),
           sizes=_sizes(_cine_sizes("phase_cnn"))),
)})

DEFAULT_METHOD = {"cxr": "cromotex", "cine": "ptacl"}  # a cohort's method when none is named


def method(name: str) -> Method:
    """The registered method ``name``; ConfigError naming the valid ones otherwise."""
    if name not in METHODS:
        raise ConfigError(f"method={name!r} is not a registered method; valid: {', '.join(METHODS)}")
    return METHODS[name]


def sized_config(size: str, name: str = "cromotex"):
    """The ``size`` budget's config of method ``name``: the size's preset (``xmodal/presets/<size>.yaml``:
    ECG encoder, epochs, batches; the published setup is :class:`ExperimentConfig`'s defaults), then the
    method's loss, defaults and image sizes."""
    from importlib import resources

    from xmodal.config import ExperimentConfig, apply_overrides, load_yaml

    if size not in SIZES:
        raise ConfigError(f"unknown size {size!r}; valid: {', '.join(SIZES)}")
    base = ExperimentConfig() if size == "published" else load_yaml(resources.files("xmodal") / "presets" / f"{size}.yaml")
    return apply_overrides(base, method(name).overrides(size))
