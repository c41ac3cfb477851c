"""Section 3 — one search trial: xmodal (stage reuse + cached image features) vs the naive trial.

The naive trial runs the whole chain on an empty cache (preprocess, image pretraining, ECG SSL,
image features, align, finetune), as a search that reruns every stage would. The xmodal trial
changes ``loss.alpha`` on the warm cache (the first naive trial's), so only ``align`` and
``finetune`` run. The full run puts the image side at its published size (``trial_image`` in
:data:`xmodal.bench.context.SIZES`): the work a naive trial repeats is mostly images, and a smoke-sized
image model would hide it. The ECG side stays at the smoke preset in both trials.
"""

from __future__ import annotations

import shutil
import time

from xmodal.bench.timing import summary


def _stage_seconds(res) -> dict:
    return {name: (0.0 if out.reused else out.meta.get("seconds", 0.0)) for name, out in res.stages.items()}


def run(ctx) -> dict:
    from xmodal.config import apply_overrides
    from xmodal.stages.chain import run_chain

    image_side = ctx.size["trial_image"]
    naive, naive_stages, res = [], [], None
    for i in range(ctx.size["naive_trials"]):
        cold = ctx.chain_config(ctx.storage_dir(f"trial-{i}"), image_side)
        t0 = time.perf_counter()
        r = run_chain(cold, verbose=False)
        naive.append(time.perf_counter() - t0)
        naive_stages.append(_stage_seconds(r))
        if i == 0:
            res, cfg = r, cold  # the warm cache of the xmodal trials
            if not image_side:  # the warm chain's settings: later sections read its shards and features
                ctx.adopt_warm(r, naive[-1])
        else:
            shutil.rmtree(cold.data.storage, ignore_errors=True)
    ctx.log(f"trial: naive {naive}")
    fast, reused, fast_stages = [], [], []
    for i in range(ctx.size["xmodal_trials"]):
        t0 = time.perf_counter()
        r = run_chain(apply_overrides(cfg, {"loss.alpha": 3.0 + 0.5 * i}), verbose=False)
        fast.append(time.perf_counter() - t0)
        reused.append(r.reused)
        fast_stages.append(_stage_seconds(r))
    ctx.log(f"trial: xmodal {fast}")
    n, x = summary(naive), summary(fast)
    per_hour = {"naive": 3600 / n["median"], "xmodal": 3600 / x["median"]}
    return {"naive_seconds": n, "xmodal_seconds": x, "speedup": n["median"] / x["median"],
            "speedup_range": [n["min"] / x["max"], n["max"] / x["min"]],
            "naive_stage_seconds": naive_stages, "xmodal_stage_seconds": fast_stages, "xmodal_reused": reused,
            "image_side": {"encoder": cfg.model.image_encoder, "size": cfg.image.size,
                           "pretrain_epochs": cfg.image_pretrain.epochs},
            "trials_per_hour_2cpu": per_hour,
            "trials_per_hour_8gpu_projection": {k: 8 * v for k, v in per_hour.items()},
            "rows": res.shards.counts.get("per_split", {}), "pairs": res.shards.counts.get("ok")}
