"""The stage cache: one folder per (stage, key), where the key hashes everything the stage depends on.

    stages/<stage>/<key>/model.pt       state dicts of the stage's modules (best on validation)
    stages/<stage>/<key>/optimizer.pt   optimizer state at the end of the stage
    stages/<stage>/<key>/meta.json      written last: resolved config, inputs' keys, metrics,
                                        data fingerprint, code version

A stage whose ``meta.json`` exists is not run again; the next stage loads it by stage name and key.
"""

from __future__ import annotations

import io
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import xmodal
from xmodal.config import config_hash, to_dict
from xmodal.storage import Storage


def code_version() -> str:
    """Package version plus the git commit when run from a checkout."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(xmodal.__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{xmodal.__version__}+{sha}" if sha else xmodal.__version__


def stage_key(stage: str, *, config: Any, inputs: dict[str, str], data: str) -> str:
    """Hash of the stage's own config, its inputs' keys and the data fingerprint."""
    return config_hash({"stage": stage, "config": to_dict(config) if not isinstance(config, dict) else config,
                        "inputs": inputs, "data": data})


@dataclass
class StageOutput:
    """What a finished stage left in the store."""

    stage: str
    key: str
    meta: dict = field(default_factory=dict)
    reused: bool = False

    @property
    def metrics(self) -> dict:
        return self.meta.get("metrics", {})


class StageStore:
    def __init__(self, storage: Storage):
        self.storage = storage

    def exists(self, stage: str, key: str) -> bool:
        return self.storage.exists("stages", stage, key, "meta.json")

    def load(self, stage: str, key: str) -> StageOutput:
        return StageOutput(stage, key, self.storage.read_json("stages", stage, key, "meta.json"), reused=True)

    def load_state(self, stage: str, key: str, name: str = "model.pt") -> dict[str, Any]:
        data = self.storage.read_bytes("stages", stage, key, name)
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)

    def load_submodule(self, stage: str, key: str, prefix: str, module: str = "net") -> dict[str, torch.Tensor]:
        """The part of the stored module ``module`` under ``prefix`` (e.g. ``"encoder."``), with the
        prefix stripped: a state dict the submodule loads as it stands."""
        state = self.load_state(stage, key)[module]
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

    def save(self, stage: str, key: str, *, state: dict[str, Any], optimizer: dict[str, Any] | None,
             meta: dict[str, Any]) -> StageOutput:
        for name, obj in (("model.pt", state), ("optimizer.pt", optimizer)):
            if obj is not None:
                buf = io.BytesIO()
                torch.save(obj, buf)
                self.storage.write_bytes(buf.getvalue(), "stages", stage, key, name)
        meta = {"stage": stage, "key": key, "code_version": code_version(), "created": time.time(), **meta}
        self.storage.write_json(meta, "stages", stage, key, "meta.json")  # last: marks completion
        return StageOutput(stage, key, meta, reused=False)
