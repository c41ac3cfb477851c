"""torch.distributed helpers that are safe to call with no process group (then they are identities).

The losses call :func:`gather_with_grad` so that negatives come from the *global* batch. It follows
open_clip's ``gather_features(gather_with_grad=False)``: ``all_gather`` the tensors (no autograd), then
put this rank's own tensor back in its slot, so gradients flow into the local slice only.

Convention used by every loss in :mod:`xmodal.losses` (see ``docs/losses.md``): each rank computes the
loss over the *full* gathered batch, so every rank reports the same value as a single process on the
concatenated batch, and the gradient each rank gets for its local embeddings equals that single
process's gradient for those rows. Summed over ranks this is the single-process gradient; DDP's
all-reduce *averages*, so parameters receive ``1 / world_size`` of it.

Batches may differ in size across ranks (the first dimension is exchanged and padded).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import torch
import torch.distributed as dist

_local = threading.local()


def is_distributed() -> bool:
    """True when a torch.distributed process group is initialised (and not inside :func:`local_only`)."""
    return dist.is_available() and dist.is_initialized() and not getattr(_local, "off", False)


@contextlib.contextmanager
def local_only() -> Iterator[None]:
    """Act as a single process inside the block: the losses use this rank's batch only.

    For work one rank does alone (validation on rank 0): a collective there would wait forever for
    ranks that never join it.
    """
    prev = getattr(_local, "off", False)
    _local.off = True
    try:
        yield
    finally:
        _local.off = prev


def rank() -> int:
    """This process's rank in the default group (0 without one)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes in the default group (1 without one)."""
    return dist.get_world_size() if is_distributed() else 1


def _all_gather_list(x: torch.Tensor) -> list[torch.Tensor]:
    """``[x_rank0, x_rank1, ...]`` (detached), allowing a different first dimension per rank."""
    world = world_size()
    n = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes_ = [int(s.item()) for s in sizes]
    n_max = max(sizes_)
    x = x.detach().contiguous()
    if x.shape[0] < n_max:  # all_gather needs equal shapes: pad, then cut back
        x = torch.cat([x, x.new_zeros((n_max - x.shape[0], *x.shape[1:]))])
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x)
    return [p[:s] for p, s in zip(parts, sizes_)]


def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank along dim 0, without gradient.

    Args:
        x: ``(batch_size, ...)`` on this rank.

    Returns:
        ``(sum of batch sizes, ...)`` in rank order; ``x`` itself without a process group.
    """
    if world_size() == 1:
        return x
    return torch.cat(_all_gather_list(x))


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank along dim 0; gradients flow into this rank's slice only.

    Args:
        x: ``(batch_size, ...)`` on this rank.

    Returns:
        ``(sum of batch sizes, ...)`` in rank order; rows ``offset(rank) : offset(rank) + batch_size``
        are ``x`` itself (with its autograd history). ``x`` itself without a process group.
    """
    if world_size() == 1:
        return x
    parts = _all_gather_list(x)
    parts[rank()] = x
    return torch.cat(parts)
