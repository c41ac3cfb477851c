"""Load a local image-encoder weights file (``.pt`` / ``.pth``) into a model.

Accepts a plain state dict or ``{"state_dict": ...}``; strips ``module.`` / ``model.`` prefixes
(DataParallel, Lightning) and renames legacy DenseNet keys (``norm.1`` -> ``norm1``). A 3-channel
first conv loads into a 1-channel model by summing over input channels (timm's convention), and
``classifier.*`` entries that do not fit are skipped (the head is task-specific). Anything else
that does not match raises :class:`RecordError` naming the file and the keys.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import re
from pathlib import Path

import torch
from torch import nn

from xmodal.errors import RecordError

PREFIXES = ("module.", "model.")
HEAD_PREFIX = "classifier."
_LEGACY_DENSENET = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)
_SHOWN = 8  # keys listed per problem in an error message


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise RecordError(path, "weights file not found (check model.image_weights)")
    return path


def weights_digest(path: str | Path) -> str:
    """Content hash of a weights file, so that new weights written to the same path are a new stage
    key, not a stale cache hit. Hashed once per (path, size, mtime) in a process."""
    path = _existing(path)
    st = path.stat()
    return _digest(str(path.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of ``path`` with prefixes stripped and legacy DenseNet keys renamed."""
    path = _existing(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # garbage, or objects beyond tensors (torch's message says to trust the file)
        raise RecordError(path, "not a tensor state dict that torch.load(weights_only=True) reads; "
                                "save one with torch.save(model.state_dict(), path)") from None
    except Exception as e:  # truncated files, zip errors...: their first line
        first = next((x for x in str(e).splitlines() if x.strip()), "")
        raise RecordError(path, f"cannot be read as a torch state dict ({type(e).__name__}: {first})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise RecordError(path, "expected a state dict (name -> tensor) or {'state_dict': ...}")
    out = {}
    for key, value in obj.items():
        while key.startswith(PREFIXES):
            key = key.split(".", 1)[1]
        out[_LEGACY_DENSENET.sub(r"\1\2", key)] = value
    return out


def _fit_input_conv(src: torch.Tensor, dst_shape: torch.Size) -> torch.Tensor | None:
    """A ``(O, 3, k, k)`` conv weight summed to ``(O, 1, k, k)`` when that is the target shape."""
    if src.ndim == 4 and len(dst_shape) == 4 and dst_shape[1] == 1 and src.shape[1] == 3 \
            and src.shape[0] == dst_shape[0] and src.shape[2:] == dst_shape[2:]:
        return src.sum(dim=1, keepdim=True)
    return None


def _listing(keys: list[str]) -> str:
    more = f" ... (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def load_image_weights(model: nn.Module, path: str | Path) -> list[str]:
    """Load ``path`` into ``model`` in place; returns the file keys that were skipped (head only).

    Raises:
        RecordError: the file is missing or unreadable, or keys are missing, unexpected or of the
            wrong shape (each listed).
    """
    path = Path(path)
    state = read_state_dict(path)
    target = model.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    skipped, unexpected, wrong_shape = [], [], []
    for key, value in state.items():
        if key not in target:
            (skipped if key.startswith(HEAD_PREFIX) else unexpected).append(key)
            continue
        if value.shape != target[key].shape:
            fitted = _fit_input_conv(value, target[key].shape)
            if fitted is not None:
                value = fitted
            elif key.startswith(HEAD_PREFIX):
                skipped.append(key)
                continue
            else:
                wrong_shape.append(f"{key} (file {tuple(value.shape)}, model {tuple(target[key].shape)})")
                continue
        loaded[key] = value
    missing = [k for k in target if k not in loaded and k not in skipped
               and not k.endswith("num_batches_tracked") and not k.startswith(HEAD_PREFIX)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} model key(s) missing from the file: {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
    if wrong_shape:
        problems.append(f"{len(wrong_shape)} key(s) with the wrong shape: {_listing(wrong_shape)}")
    if problems:
        raise RecordError(path, f"weights do not match {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(loaded, strict=False)
    return skipped
