"""xmodal.dist helpers, and a real 2-process gloo run of every loss against a single process.

Convention checked here (see docs/losses.md): with a process group each rank's loss equals the
single-process loss on the concatenated batch, the gradient of each rank's local embeddings equals the
single-process gradient of those rows, and parameter gradients summed over ranks equal the
single-process parameter gradient.
"""

from __future__ import annotations

import os
import socket
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from xmodal import dist as xdist
from xmodal.losses import (NTXentLoss, ahnp_supcon, build_loss, clip_infonce, local_temporal,
                           masked_bce_with_logits, multi_phase_clip)
from xmodal.config import LossConfig

SIZES = (5, 3)  # rows per rank; unequal on purpose (gather pads and cuts)
N, T, D = sum(SIZES), 4, 6


def global_inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return {"x_ecg": r(N, D), "x_img": r(N, D), "z_ed": r(N, D), "z_es": r(N, D),
            "labels": torch.tensor([0, 1, 0, 2, 1, 0, 2, 1]), "e_tokens": r(N, T, D), "c_tokens": r(N, T, D),
            "task_logits": r(N), "task_targets": torch.tensor([1.0, float("nan"), 0.0, 1.0, 0.0, 0.0, float("nan"), 1.0]),
            "w": r(D, D)}


def cases():
    """name -> fn(inputs with leaf tensors, projection) -> scalar loss."""
    out = {f"ahnp_{s}": (lambda x, p, s=s: ahnp_supcon(p(x["x_ecg"]), x["x_img"], x["labels"], strategy=s, k=0.3,
                                                        alpha=3.0, beta=2.0, tau=0.1))
           for s in ("none", "topk", "linear", "exp")}
    ptacl = build_loss(LossConfig(name="ptacl", global_loss="clip", sigma=0.2, lambda_local=0.5, tau=0.1))
    out.update({
        "clip": lambda x, p: clip_infonce(p(x["x_ecg"]), x["x_img"], tau=0.1),
        "ntxent": lambda x, p: NTXentLoss(tau=0.2)({"z1": p(x["x_ecg"]), "z2": x["x_img"]})["ntxent_loss"],
        "multi_phase": lambda x, p: multi_phase_clip(p(x["x_ecg"]), x["z_ed"], x["z_es"], lambdas=(1, 2, 3), tau=0.1),
        "local_temporal": lambda x, p: local_temporal(x["e_tokens"], x["c_tokens"], sigma=0.1, tau=0.1),
        "task_bce": lambda x, p: masked_bce_with_logits(x["task_logits"], x["task_targets"]),
        "ptacl_module": lambda x, p: sum(ptacl({"z_ecg": p(x["x_ecg"]), "z_img": x["x_img"], **x}).values()),
    })
    return out


def run_cases(inputs: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Loss value, input gradients and the projection's gradient for every case."""
    results = {}
    for name, fn in cases().items():
        x = {k: v.clone().requires_grad_(v.is_floating_point() and k != "task_targets") for k, v in inputs.items()}
        loss = fn(x, lambda z: z @ x["w"])  # a shared "parameter" w, as DDP would hold
        loss.backward()
        results[name] = {"loss": loss.detach(), "w": x["w"].grad.clone() if x["w"].grad is not None else None,
                         **{k: v.grad.clone() for k, v in x.items() if k != "w" and v.grad is not None}}
    return results


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        start = sum(SIZES[:rank])
        local = {k: (v if k == "w" else v[start:start + SIZES[rank]]) for k, v in global_inputs().items()}
        res = run_cases(local)
        # The raw helpers: values in rank order, gradient only into the local slice.
        x = torch.full((SIZES[rank], 2), float(rank + 1), requires_grad=True)
        gathered = xdist.gather_with_grad(x)
        (gathered * torch.arange(1.0, N + 1)[:, None]).sum().backward()
        res["_helpers"] = {"gathered": gathered.detach(), "grad": x.grad,
                           "no_grad": xdist.gather_no_grad(torch.tensor([rank])),
                           "meta": torch.tensor([xdist.rank(), xdist.world_size(), int(xdist.is_distributed())])}
        torch.save(res, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_helpers_without_process_group_are_identities():
    assert not xdist.is_distributed() and xdist.rank() == 0 and xdist.world_size() == 1
    x = torch.randn(3, 2, requires_grad=True)
    assert xdist.gather_with_grad(x) is x and xdist.gather_no_grad(x) is x


def test_two_process_gloo_matches_single_process():
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_worker, args=(2, free_port(), d), nprocs=2, join=True)
        ranks = [torch.load(os.path.join(d, f"rank{r}.pt")) for r in range(2)]

    for r, res in enumerate(ranks):
        h = res.pop("_helpers")
        assert h["meta"].tolist() == [r, 2, 1]
        torch.testing.assert_close(h["gathered"], torch.cat([torch.full((n, 2), i + 1.0) for i, n in enumerate(SIZES)]))
        start = sum(SIZES[:r])
        torch.testing.assert_close(h["grad"], torch.arange(start + 1.0, start + SIZES[r] + 1)[:, None].expand(-1, 2))
        assert h["no_grad"].tolist() == [0, 1]

    single = run_cases(global_inputs())
    for name, want in single.items():
        got = [ranks[r][name] for r in range(2)]
        for r in range(2):
            torch.testing.assert_close(got[r]["loss"], want["loss"], rtol=1e-10, atol=0, msg=f"{name} loss rank {r}")
        for key in want:
            if key == "loss" or want[key] is None:
                continue
            if key == "w":  # parameter: summed over ranks (DDP's all-reduce sums, then divides by world)
                summed = got[0]["w"] + got[1]["w"]
                torch.testing.assert_close(summed, want["w"], rtol=1e-8, atol=1e-12, msg=f"{name} grad w")
            else:  # per-row inputs: each rank holds the exact single-process gradient of its rows
                torch.testing.assert_close(torch.cat([got[0][key], got[1][key]]), want[key], rtol=1e-8, atol=1e-12,
                                           msg=f"{name} grad {key}")
