"""The per-pathology search space (Optuna define-by-run) and the published defaults.

Parameters are named by the dotted config key they override (``"loss.tau"``), so a sampled point
is applied with ``apply_overrides`` and written back as a full typed config. Conditional parameters:

- ``loss.k`` only for ``topk``; ``loss.alpha`` only for ``topk``/``linear``/``exp``;
- ``loss.sigma`` and ``loss.lambda_local`` only for cine cohorts (PTACL's local temporal loss);
- ``loss.beta``, ``loss.tau`` and ``align.lr`` always.

Ranges (defaults below) can be overridden from a YAML file with the same field names::

    tau: [0.005, 0.5]
    strategies: [topk, exp]
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from xmodal.errors import SearchError

PUBLISHED_DEFAULTS: dict[str, Any] = {
    "loss.strategy": "topk", "loss.k": 0.075, "loss.alpha": 4.5, "loss.beta": 2.0, "loss.tau": 0.01,
}
PUBLISHED_CINE_DEFAULTS: dict[str, Any] = {"loss.sigma": 0.1, "loss.lambda_local": 1.0}


@dataclass(frozen=True)
class SearchSpace:
    """Ranges of the AHNP (and PTACL) loss settings; ``(low, high)``, log scale where noted."""

    strategies: tuple[str, ...] = ("none", "topk", "linear", "exp")
    k: tuple[float, float] = (0.01, 0.5)
    alpha: tuple[float, float] = (1.0, 8.0)
    beta: tuple[float, float] = (1.0, 4.0)
    tau: tuple[float, float] = (0.005, 0.5)  # log scale
    sigma: tuple[float, float] = (0.0, 0.25)  # phase units; 0 = identity alignment
    lambda_local: tuple[float, float] = (0.1, 2.0)
    lr: tuple[float, float] = (1e-4, 3e-3)  # log scale

    def suggest(self, trial: Any, *, cine: bool) -> None:
        """Optuna define-by-run: sample one point into ``trial`` (returns no constants)."""
        strategy = trial.suggest_categorical("loss.strategy", list(self.strategies))
        if strategy == "topk":
            trial.suggest_float("loss.k", *self.k)
        if strategy != "none":
            trial.suggest_float("loss.alpha", *self.alpha)
        trial.suggest_float("loss.beta", *self.beta)
        trial.suggest_float("loss.tau", *self.tau, log=True)
        if cine:
            trial.suggest_float("loss.sigma", *self.sigma)
            trial.suggest_float("loss.lambda_local", *self.lambda_local)
        trial.suggest_float("align.lr", *self.lr, log=True)


def load_space(path: str | Path | None) -> SearchSpace:
    """Defaults, overridden by a YAML file; unknown keys and malformed ranges raise SearchError."""
    space = SearchSpace()
    if not path:
        return space
    path = Path(path)
    if not path.exists():
        raise SearchError(f"{path}: search-space file not found")
    data = yaml.safe_load(path.read_text()) or {}
    names = [f.name for f in fields(SearchSpace)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise SearchError(f"{path}: unknown search-space key(s) {', '.join(unknown)}; valid: {', '.join(names)}")
    updates: dict[str, Any] = {}
    for key, value in data.items():
        if key == "strategies":
            bad = [s for s in value if s not in SearchSpace.strategies]
            if not value or bad:
                raise SearchError(f"{path}: strategies must be a non-empty subset of {SearchSpace.strategies}")
            updates[key] = tuple(value)
        else:
            if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)
                    and value[0] <= value[1]):
                raise SearchError(f"{path}: {key} must be [low, high] with low <= high, got {value!r}")
            updates[key] = (float(value[0]), float(value[1]))
    return replace(space, **updates)


def published_point(cine: bool, lr: float) -> dict[str, Any]:
    """The published CroMoTEX setting (topk, k=0.075, α=4.5, β=2, τ=0.01) as a search point."""
    point = {**PUBLISHED_DEFAULTS, "align.lr": lr}
    if cine:
        point.update(PUBLISHED_CINE_DEFAULTS)
    return point


def clip_point(point: dict[str, Any], space: SearchSpace) -> dict[str, Any]:
    """Keep a point inside the space's ranges (Optuna rejects out-of-range fixed values)."""
    out = dict(point)
    for key, value in point.items():
        name = key.split(".", 1)[1]
        rng = getattr(space, name, None)
        if isinstance(value, float) and isinstance(rng, tuple) and len(rng) == 2 and not isinstance(rng[0], str):
            out[key] = min(max(value, rng[0]), rng[1])
    return out
