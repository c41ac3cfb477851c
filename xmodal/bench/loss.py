"""Section 1 — the AHNP-SupCon kernel against a plain mask-based implementation.

The plain one follows the published SupCon/CroMoTEX code: ``exp(sim / tau) * weights``, divide by the
row sum, take the log. It is the same math as :func:`xmodal.losses.ahnp.ahnp_supcon`, without the
log-space (``logsumexp``, ``softplus``) formulation, so it overflows in float32 once ``1 / tau`` is large.
Embeddings are aligned pairs (``z_img = z_ecg + noise``), as late in training, so ``cos_ii`` is near 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from xmodal.bench.timing import summary
from xmodal.losses.ahnp import STRATEGIES, ahnp_supcon

DIM = 256
HP = {"k": 0.075, "alpha": 4.5, "beta": 2.0}  # the published CroMoTEX setting
TIMING_TAU = 0.07  # where the plain loss is still finite, so both time the same arithmetic


def plain_weights(sim: torch.Tensor, neg: torch.Tensor, strategy: str, k: float, alpha: float,
                  tau: float) -> torch.Tensor:
    """``(B, B)`` denominator weights, 1 on positives (no gradient), as a dense mask."""
    sim = sim.detach()
    ones = torch.ones_like(sim)
    if strategy == "topk":
        n = math.ceil(k * sim.shape[1])
        idx = sim.masked_fill(~neg, -float("inf")).topk(n, dim=1).indices
        hard = torch.zeros_like(sim).scatter_(1, idx, 1.0) * neg
        return ones + (alpha - 1.0) * hard
    if strategy == "linear":
        lo = sim.masked_fill(~neg, float("inf")).amin(1, keepdim=True)
        hi = sim.masked_fill(~neg, -float("inf")).amax(1, keepdim=True)
        return torch.where(neg, 1.0 + (alpha - 1.0) * (sim - lo) / (hi - lo + 1e-8), ones)
    if strategy == "exp":
        return torch.where(neg, 1.0 + torch.exp(alpha * sim / tau), ones)
    return ones


def plain_supcon(z_ecg: torch.Tensor, z_img: torch.Tensor, labels: torch.Tensor, *, strategy: str, k: float,
                 alpha: float, beta: float, tau: float) -> torch.Tensor:
    """Plain symmetric weighted SupCon: z ``(B, D)``, labels ``(B,)`` -> scalar."""
    sim = F.normalize(z_ecg, dim=1) @ F.normalize(z_img, dim=1).T
    pos = labels[:, None] == labels[None, :]

    def one(s: torch.Tensor) -> torch.Tensor:
        w = plain_weights(s, ~pos, strategy, k, alpha, tau)
        exp_logits = torch.exp(s / tau) * w
        log_prob = torch.log(torch.exp(s / tau) / exp_logits.sum(1, keepdim=True))
        m = pos.float()
        m.fill_diagonal_(beta)
        return (-(m * log_prob).sum(1) / m.sum(1)).mean()

    return 0.5 * (one(sim) + one(sim.T))


IMPLS = {"xmodal": ahnp_supcon, "plain": plain_supcon}


def inputs(b: int, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, DIM, generator=g)
    zi = z + 0.1 * torch.randn(b, DIM, generator=g)
    y = (torch.rand(b, generator=g) < 0.3).long()
    return (z.to(device).requires_grad_(), zi.to(device).requires_grad_(), y.to(device))


def step(impl: str, strategy: str, tau: float, x: tuple) -> tuple[float, bool]:
    """Forward + backward once; returns (loss, loss and gradients finite)."""
    z, zi, y = x
    z.grad = zi.grad = None
    loss = IMPLS[impl](z, zi, y, strategy=strategy, tau=tau, **HP)
    loss.backward()
    finite = bool(torch.isfinite(loss) and torch.isfinite(z.grad).all() and torch.isfinite(zi.grad).all())
    return float(loss.detach()), finite


def saved_bytes(impl: str, strategy: str, x: tuple) -> int:
    """Bytes autograd keeps for backward (distinct storages): what sets peak memory on CPU."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        z, zi, y = x
        IMPLS[impl](z, zi, y, strategy=strategy, tau=TIMING_TAU, **HP)
    return sum(seen.values())


def peak_bytes(impl: str, strategy: str, x: tuple) -> int:
    """Peak allocated bytes of one step: CUDA's allocator counter, or autograd's saved tensors on CPU."""
    if x[0].is_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step(impl, strategy, TIMING_TAU, x)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    return saved_bytes(impl, strategy, x)


def _time(impl: str, strategy: str, x: tuple) -> float:
    import time

    if x[0].is_cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    step(impl, strategy, TIMING_TAU, x)
    if x[0].is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def run(ctx) -> dict:
    """Time (interleaved, after a warm-up) and check finiteness of both implementations."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sizes = (256, 1024) if ctx.quick else (256, 1024, 4096)
    reps = {256: 5, 1024: 3} if ctx.quick else {256: 20, 1024: 10, 4096: 5}
    rows = []
    for b in sizes:
        x = inputs(b, device)
        for strategy in STRATEGIES:
            times = {impl: [] for impl in IMPLS}
            for impl in IMPLS:
                _time(impl, strategy, x)  # warm-up
            for _ in range(reps[b]):
                for impl in IMPLS:
                    times[impl].append(_time(impl, strategy, x))
            t = {impl: summary(v) for impl, v in times.items()}
            rows.append({"batch": b, "strategy": strategy, "seconds": t,
                         "ratio": t["xmodal"]["median"] / t["plain"]["median"],
                         "peak_bytes": {impl: peak_bytes(impl, strategy, x) for impl in IMPLS}})
        ctx.log(f"loss: B={b} done")
    x = inputs(1024, device)
    finite = {impl: {s: step(impl, s, 0.01, x)[1] for s in STRATEGIES} for impl in IMPLS}
    worst = max((r for r in rows if r["batch"] == 1024), key=lambda r: r["ratio"])
    return {"device": device, "dim": DIM, "timing_tau": TIMING_TAU, "hyperparameters": HP, "rows": rows,
            "finite_at_tau_0_01": finite, "worst_at_1024": {"strategy": worst["strategy"], "ratio": worst["ratio"]}}
