"""Section 5 — align throughput with 1, 2 and 4 Ray Train workers (needs a GPU or >= 4 cores).

Each run is the real ``align`` stage on the warm chain's features (a new ``align.seed`` per run so
nothing is reused); throughput is training pairs x epochs over the stage's wall time, including
the TorchTrainer start-up.
"""

from __future__ import annotations

from xmodal.bench.timing import summary

MIN_CORES = 4


def feasible_workers(machine: dict) -> list[int]:
    slots = machine["gpus"] if machine["gpus"] else machine["cores"] // 2
    return [w for w in (1, 2, 4) if w <= slots]


def run(ctx) -> dict:
    from xmodal.config import apply_overrides
    from xmodal.stages import align
    from xmodal.stages.store import StageStore

    m = ctx.machine
    workers = feasible_workers(m)
    if not m["gpus"] and m["cores"] < MIN_CORES or len(workers) < 2:
        return {"reason": f"this machine has {m['cores']} CPU cores and GPU {m['gpu']} "
                          f"(needs a GPU or >= {MIN_CORES} cores for 2+ workers)"}
    chain = ctx.warm_chain()
    cfg = ctx.chain_config(ctx.work / "warm")
    rows = chain.shards.counts["per_split"]["train"]
    out = {"workers": {}, "use_gpu": bool(m["gpus"])}
    for i, w in enumerate(workers):
        runs = []
        for rep in range(2):
            c = apply_overrides(cfg, {"scaling.num_workers": w, "scaling.use_gpu": bool(m["gpus"]),
                                      "align.seed": 1000 + 10 * i + rep})
            res = align.run(c, chain.features, chain.stages["ecg_ssl"], StageStore(chain.shards.storage),
                            verbose=False)
            runs.append(rows * c.align.epochs / res.meta["seconds"])
        out["workers"][w] = summary(runs)
        ctx.log(f"scaling: {w} workers: {out['workers'][w]['median']:.1f} pairs/s")
    return out
