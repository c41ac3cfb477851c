"""Section 6 — peak resident memory per Ray Train worker: CXR (CroMoTEX) next to the CMR methods.

Each case runs the whole chain (image_pretrain, ecg_ssl, features, align, finetune) on a synthetic
cohort at the smoke size (quick and full runs) and at the demo size (full runs), with the method's
own encoder and sizes (:func:`xmodal.methods.sized_config`), as Ray Train runs (``scaling.launcher =
ray_train``): each run's worker is a fresh process, so its peak resident memory (``ru_maxrss``, reported
with each epoch) is that stage's alone. (In process, a stage's worker is the calling process, whose peak
also holds whatever ran in it before.) A case's figure is the largest over its stages.
The memory budget check (:mod:`xmodal.stages.memory`) refuses a stage before training when its
estimate does not fit; these are the measured peaks it is judged against.
"""

from __future__ import annotations

CASES = (("cxr", "cromotex"), ("cine", "ptacl"), ("cine", "eccl"), ("cine", "dual_phase"))
SMOKE_SUBJECTS = 160
LIMIT_MB = 2048  # the per-worker ceiling the CMR issue set for the smoke and demo sizes


def stage_peaks(result) -> dict[str, float]:
    """Peak ``worker_peak_rss_mb`` reported by each stage of a chain result."""
    return {name: max((m.get("worker_peak_rss_mb", 0.0) for m in out.metrics.get("history", [])), default=0.0)
            for name, out in result.stages.items()}


def run(ctx) -> dict:
    from xmodal.config import apply_overrides
    from xmodal.methods import sized_config
    from xmodal.stages.chain import DEMO_SUBJECTS, demo_manifest, run_chain

    sizes = ("smoke",) if ctx.quick else ("smoke", "demo")
    cases = CASES[:1] if ctx.quick else CASES  # quick: the path, for the tests (one CXR method)
    out: dict = {"limit_mb": LIMIT_MB, "cases": []}
    for size in sizes:
        for kind, method in cases:
            subjects = SMOKE_SUBJECTS if size == "smoke" else DEMO_SUBJECTS[kind]
            manifest = demo_manifest(kind, subjects=subjects, storage=str(ctx.cache / "store"))
            cfg = apply_overrides(sized_config(size, method), {
                "data.manifest": str(manifest), "data.storage": str(ctx.storage_dir(f"memory-{size}-{method}")),
                "data.pathology": "cardiomegaly" if kind == "cxr" else "mi", "scaling.launcher": "ray_train"})
            res = run_chain(cfg, verbose=False)
            peaks = stage_peaks(res)
            case = {"size": size, "method": method, "image_shape": list(res.shards.image_shape),
                    "encoder": cfg.model.image_encoder, "stage_peak_mb": peaks,
                    "peak_mb": max(peaks.values()), "val_auroc": res.val.get("val_auroc")}
            out["cases"].append(case)
            ctx.log(f"memory: {size} {method}: peak {case['peak_mb']:.0f} MiB per worker ({peaks})")
    out["max_peak_mb"] = max(c["peak_mb"] for c in out["cases"])
    return out
