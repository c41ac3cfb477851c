"""Command line of ``searches/ahnp_per_pathology.py``.

With no arguments: local Ray, the synthetic demo cohort (generated once, cached), the ``demo``
preset and a small budget. ``--smoke-test``: the same path at the smallest size, for the first
pathology only (unless ``--pathologies`` is given). ``--data MANIFEST``: a real cohort (MIMIC or CSV builder).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from importlib import resources
from pathlib import Path

from xmodal.errors import XmodalError

BUDGETS = {  # trials per pathology, refit top-k, seeds, demo subjects
    "default": dict(num_samples=4, refit_top=1, refit_seeds=2, subjects=None, preset="demo"),  # None: DEMO_SUBJECTS
    "smoke": dict(num_samples=2, refit_top=1, refit_seeds=1, subjects=160, preset="smoke"),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ahnp_per_pathology.py", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--data", default="", help="cohort manifest (Parquet); default: the synthetic demo cohort")
    a("--config", default="", help="base config YAML; default: the demo preset (demo cohort) or the "
                                    "published setup (--data)")
    a("--set", action="append", default=[], metavar="KEY=VALUE", help="dotted-key override of the base config")
    a("--method", default="", choices=["", "cromotex", "eccl", "ptacl", "dual_phase"],
      help="default: cromotex for CXR cohorts, ptacl (AHNP global + local temporal) for cine cohorts")
    a("--pathologies", nargs="+", default=None, help="default: cardiomegaly pleural_effusion edema (CXR) or "
                                                     "mi cardiomyopathy af hf (CMR)")
    a("--storage", default="", help="stage cache + Tune state: local folder or s3://, gs:// URI")
    a("--run", default="", help="report name: reports/<run>/ (default: demo, smoke or a timestamp)")
    a("--reports", default="reports", help="reports root")
    a("--num-samples", type=int, default=None, help="trials per pathology")
    a("--max-concurrent", type=int, default=0, help="concurrent trials (0: from the cluster's CPUs/GPUs)")
    a("--workers-per-trial", type=int, default=1, help="Ray Train workers per trial")
    a("--cpus-per-worker", type=float, default=1.0)
    a("--gpus-per-worker", type=float, default=0.0, help="fractional allowed, e.g. 0.25")
    a("--grace-period", type=int, default=2, help="ASHA: epochs before a trial may be stopped")
    a("--refit-top", type=int, default=None, help="best configs refit with several seeds")
    a("--refit-seeds", type=int, default=None)
    a("--space", default="", help="YAML overriding search-space ranges (see xmodal/search/space.py)")
    a("--seed", type=int, default=0, help="sampler (TPE) seed")
    a("--warm-start", action="store_true", help="seed each pathology's study with earlier pathologies' best")
    a("--resume", action="store_true", help="continue an interrupted search from its storage path")
    a("--optuna-storage", default="", help="Optuna RDB URL (default: sqlite in the Tune storage)")
    a("--num-cpus", type=int, default=0, help="logical CPUs for local Ray (default: one concurrent trial per core)")
    a("--demo-subjects", type=int, default=None, help="size of the synthetic demo cohort")
    a("--smoke-test", action="store_true", help="smallest end-to-end run: first pathology, 2 trials, tiny models")
    return p


def build(args: argparse.Namespace):
    from xmodal.config import ExperimentConfig, apply_overrides, load_yaml, parse_override
    from xmodal.search.driver import SearchOptions
    from xmodal.search.space import load_space
    from xmodal.storage import Storage

    budget = BUDGETS["smoke" if args.smoke_test else "default"]
    if args.config:
        cfg = load_yaml(args.config)
    elif args.data:
        cfg = ExperimentConfig()
    else:
        cfg = load_yaml(resources.files("xmodal") / "presets" / f"{budget['preset']}.yaml")
    over = dict(parse_override(s) for s in args.set)
    if args.method:
        over["method"] = args.method
    if args.data:
        over["data.manifest"] = str(Path(args.data).resolve()) if "://" not in args.data else args.data
    if args.storage:
        over["data.storage"] = args.storage
    cfg = apply_overrides(cfg, over)
    if "://" not in cfg.data.storage:
        cfg = apply_overrides(cfg, {"data.storage": str(Path(cfg.data.storage).resolve())})
    run = args.run or ("smoke" if args.smoke_test else "demo" if not args.data else time.strftime("%Y%m%d-%H%M%S"))
    opts = SearchOptions(
        run=run, num_samples=args.num_samples or budget["num_samples"], max_concurrent=args.max_concurrent,
        workers_per_trial=args.workers_per_trial, cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=args.gpus_per_worker, grace_period=args.grace_period,
        refit_top=args.refit_top or budget["refit_top"], refit_seeds=args.refit_seeds or budget["refit_seeds"],
        seed=args.seed, warm_start=args.warm_start, resume=args.resume, optuna_storage=args.optuna_storage,
        storage=Storage(cfg.data.storage).child("tune").uri,
        reports=args.reports)
    return cfg, opts, load_space(args.space or None), budget


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _main(args)
    except XmodalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    from xmodal.config import apply_overrides
    from xmodal.data.manifest import load_manifest
    from xmodal.report.tables import console, fmt
    from xmodal.runtime import ensure_ray
    from xmodal.search.driver import DATA_CPUS_PER_TRIAL
    from xmodal.search.driver import resources as trial_resources
    from xmodal.search.run import default_pathologies, run_search, validate_pathologies
    from xmodal.stages.chain import DEMO_SUBJECTS, METHOD_IMAGE_KIND, METHOD_LOSS, demo_manifest

    cfg, opts, space, budget = build(args)
    t0 = time.time()
    if not cfg.data.manifest:
        subjects = args.demo_subjects or budget["subjects"] or DEMO_SUBJECTS
        print(f"[xmodal] synthetic demo cohort ({subjects} subjects; generated once, then cached)")
        cfg = apply_overrides(cfg, {"data.manifest": str(demo_manifest(cfg, subjects=subjects).resolve())})
    manifest = load_manifest(cfg.data.manifest)
    kind = manifest["image_kind"].iloc[0]
    if not args.method and METHOD_IMAGE_KIND[cfg.method] != kind:
        cfg = apply_overrides(cfg, {"method": "ptacl", "loss.name": "ptacl", "loss.global_loss": "ahnp_supcon",
                                    "model.image_encoder": "cine_transformer"})
    cfg = apply_overrides(cfg, {"loss.name": METHOD_LOSS[cfg.method]})
    pathologies = args.pathologies or list(default_pathologies(kind))[: 1 if args.smoke_test else None]
    validate_pathologies(pathologies, manifest, cfg.data.manifest)

    need = trial_resources(opts)
    per_trial = int(need["CPU"] + DATA_CPUS_PER_TRIAL)
    # Local Ray: room for one training trial per core (each trains on one thread), plus their Tune
    # functions and Data reads, which mostly wait: 6 logical CPUs and 2 trials at once on 2 cores.
    num_cpus = args.num_cpus or per_trial * max(1, opts.max_concurrent or (os.cpu_count() or 1))
    cluster = ensure_ray(num_cpus)
    print(f"[xmodal] Ray: {cluster.get('CPU', 0):g} logical CPUs, {cluster.get('GPU', 0):g} GPUs; "
          f"method {cfg.method}; pathologies {', '.join(pathologies)}; run '{opts.run}'")
    results = run_search(cfg, pathologies, space, opts, cluster=cluster)

    rows = []
    for r in results:
        s = r.summary
        rows.append([r.pathology, r.config.loss.strategy, fmt(r.config.loss.tau),
                     fmt(s["val"]["published"]["mean_val_auroc"]), fmt(s["val"]["recommended"]["mean_val_auroc"]),
                     fmt(s["val"]["baseline"]["mean_val_auroc"]), fmt(s["test"]["recommended"]["auroc"])])
    print("\n" + console(["pathology", "strategy", "tau", "val published", "val best", "val ECG-only",
                          "test best"], rows))
    out = Path(opts.reports) / opts.run
    print(f"\nreport: {out / 'summary.md'}   recommended configs: {out}/<pathology>/recommended.yaml   "
          f"({(time.time() - t0) / 60:.1f} min)")
    return 0
