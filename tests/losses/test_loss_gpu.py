"""bf16 autocast on CUDA: every loss is finite and computed in float32. Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch

from xmodal.losses import ahnp_supcon, clip_infonce, local_temporal, multi_phase_clip, ntxent

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

CASES = {
    **{f"ahnp_{s}": (lambda a, b, c, y, e, f, s=s: ahnp_supcon(a, b, y, strategy=s, k=0.075, alpha=4.5, beta=2.0,
                                                               tau=0.01)) for s in ("none", "topk", "linear", "exp")},
    "clip": lambda a, b, c, y, e, f: clip_infonce(a, b, tau=0.01),
    "ntxent": lambda a, b, c, y, e, f: ntxent(a, b, tau=0.01),
    "multi_phase": lambda a, b, c, y, e, f: multi_phase_clip(a, b, c, lambdas=(1.0, 1.0, 1.0), tau=0.01),
    "local_temporal": lambda a, b, c, y, e, f: local_temporal(e, f, sigma=0.1, tau=0.01),
}


def bf16_inputs(n=512, d=128, t=8):
    g = torch.Generator(device="cuda").manual_seed(0)
    r = lambda *s: torch.randn(*s, device="cuda", generator=g).bfloat16()  # noqa: E731
    base = r(1, d)
    near = lambda: (base + 1e-2 * r(n, d)).bfloat16()  # noqa: E731  nearly identical: the hard case at tau=0.01
    y = torch.randint(0, 4, (n,), device="cuda", generator=g)
    return [near(), near(), near(), y, r(n // 8, t, d), r(n // 8, t, d)]


@pytest.mark.parametrize("name", list(CASES))
def test_bf16_autocast_finite_and_equal_to_fp32(name):
    fn = CASES[name]
    x = [t.requires_grad_() if t.is_floating_point() else t for t in bf16_inputs()]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        got = fn(*x)
    assert got.dtype == torch.float32 and torch.isfinite(got)
    got.backward()
    grads = [t.grad for t in x if t.is_floating_point() and t.grad is not None]  # inputs the case uses
    assert grads and all(g.dtype == torch.bfloat16 and torch.isfinite(g).all() for g in grads)
    # The same (bf16-representable) values in fp32 without autocast: the loss itself runs in fp32, so
    # only summation order may differ.
    ref = fn(*[t.detach().float() if t.is_floating_point() else t for t in x])
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
