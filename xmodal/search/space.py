"""The per-pathology search space (Optuna define-by-run), per method.

Parameters are named by the dotted config key they override (``"loss.tau"``), so a sampled point
is applied with ``apply_overrides`` and written back as a full typed config. Each method samples only
the settings its loss reads (:attr:`xmodal.methods.Method.searched`):

- ``cromotex``: AHNP ``strategy, k, alpha, beta, tau`` and ``align.lr``;
- ``eccl``: ``tau, lambda_task`` and ``align.lr``;
- ``ptacl``: the AHNP global term's settings, ``sigma, lambda_local`` and ``align.lr``;
- ``dual_phase``: ``tau`` and the three phase-term weights, and ``align.lr``.

AHNP's ``k`` is sampled only for ``topk`` and ``alpha`` for every strategy but ``none``. Ranges
(defaults below) can be overridden from a YAML file with the same field names::

    tau: [0.005, 0.5]
    strategies: [topk, exp]
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from xmodal.errors import SearchError
from xmodal.methods import method as method_spec

LOG_SCALE = ("tau", "lr", "lambda_task")


@dataclass(frozen=True)
class SearchSpace:
    """Ranges of every searchable loss setting; ``(low, high)``, log scale for ``LOG_SCALE``."""

    strategies: tuple[str, ...] = ("none", "topk", "linear", "exp")
    k: tuple[float, float] = (0.01, 0.5)
    alpha: tuple[float, float] = (1.0, 8.0)
    beta: tuple[float, float] = (1.0, 4.0)
    tau: tuple[float, float] = (0.005, 0.5)
    sigma: tuple[float, float] = (0.0, 0.25)  # phase units; 0 = identity alignment
    lambda_local: tuple[float, float] = (0.1, 2.0)
    lambda_task: tuple[float, float] = (0.05, 5.0)
    lambda_ecg_ed: tuple[float, float] = (0.1, 2.0)
    lambda_ecg_es: tuple[float, float] = (0.1, 2.0)
    lambda_ed_es: tuple[float, float] = (0.0, 2.0)
    lr: tuple[float, float] = (1e-4, 3e-3)

    def suggest(self, trial: Any, method: str) -> None:
        """Optuna define-by-run: sample ``method``'s searched settings into ``trial``."""
        spec = method_spec(method)
        values: dict[str, Any] = {}
        for key in spec.searched:
            name = key.split(".", 1)[1]
            if key == "loss.strategy":
                values[key] = trial.suggest_categorical(key, list(self.strategies))
            elif spec.applies(key, values):
                values[key] = trial.suggest_float(key, *getattr(self, name), log=name in LOG_SCALE)


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


def published_point(method: str, lr: float) -> dict[str, Any]:
    """``method``'s published defaults of its searched settings as a search point (``align.lr`` = ``lr``)."""
    return method_spec(method).published_point(lr)


def clip_point(point: dict[str, Any], space: SearchSpace) -> dict[str, Any]:
    """Keep a point inside the space's ranges (Optuna rejects out-of-range fixed values)."""
    out = dict(point)
    for key, value in point.items():
        name = key.split(".", 1)[1]
        rng = getattr(space, name, None)
        if isinstance(value, float) and isinstance(rng, tuple) and len(rng) == 2 and not isinstance(rng[0], str):
            out[key] = min(max(value, rng[0]), rng[1])
    return out
