"""Command line of ``searches/ahnp_per_pathology.py``.

With no arguments: local Ray, the synthetic demo cohort (generated once, cached), the ``demo``
preset and a small budget. ``--smoke-test``: the same path at the smallest size, for the first
pathology only (unless ``--pathologies`` is given). ``--data MANIFEST``: a real cohort (MIMIC or CSV builder).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

from xmodal.errors import exit_code

BUDGETS = {  # trials per pathology, race entrants K and seeds, demo subjects (None: the cohort's DEMO_SUBJECTS)
    "default": dict(num_samples=4, race_top=2, race_seeds=3, subjects=None),
    "smoke": dict(num_samples=2, race_top=1, race_seeds=2, subjects=160),
}


def parser() -> argparse.ArgumentParser:
    from xmodal.methods import METHODS

    p = argparse.ArgumentParser(prog="ahnp_per_pathology.py", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--data", default="", help="cohort manifest (Parquet); default: the synthetic demo cohort")
    a("--config", default="", help="base config YAML; default: the demo preset (demo cohort) or the "
                                    "published setup (--data)")
    a("--set", action="append", default=[], metavar="KEY=VALUE", help="dotted-key override of the base config")
    a("--method", default="", choices=["", *METHODS],
      help="sets the image encoder, loss, published defaults, sizes and search space (xmodal/methods.py); "
           "default: cromotex for CXR cohorts, ptacl for cine cohorts")
    a("--cohort", default="", choices=["", "cxr", "cmr"],
      help="synthetic demo cohort when no --data: cxr (default) or cmr (default with a CMR --method)")
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
    a("--race-top", "--refit-top", dest="race_top", type=int, default=None,
      help="K: best distinct configs found that race the published defaults on shared seeds")
    a("--race-seeds", "--refit-seeds", dest="race_seeds", type=int, default=None,
      help="seeds the race may spend per candidate (the ECG-only baseline trains on the same seeds)")
    a("--min-gain", type=float, default=0.0,
      help="AUROC the best found must beat the published defaults by (lower bound of its paired 95%% CI)")
    a("--space", default="", help="YAML overriding search-space ranges (see xmodal/search/space.py)")
    a("--seed", type=int, default=0, help="sampler (TPE) seed")
    a("--warm-start", action="store_true", help="seed each pathology's study with earlier pathologies' best")
    a("--resume", action="store_true", help="continue an interrupted search from its storage path")
    a("--optuna-storage", default="", help="Optuna RDB URL (default: sqlite in the Tune storage)")
    a("--tracking", default="", metavar="mlflow[=URI]",
      help="log every trial, race run and final evaluation to MLflow (default URI: sqlite in the Tune storage; "
           "http://HOST:PORT: a tracking server); needs pip install 'xmodal[tracking]'")
    a("--num-cpus", type=int, default=0, help="logical CPUs for local Ray (default: one concurrent trial per core)")
    a("--demo-subjects", type=int, default=None, help="size of the synthetic demo cohort")
    a("--demo-seed", type=int, default=0, help="seed the synthetic demo cohort is drawn with (another seed: "
                                                 "another cohort with the same plant; report demo-seed<N>)")
    a("--smoke-test", action="store_true", help="smallest end-to-end run: first pathology, 2 trials, tiny models")
    return p


def size_of(args: argparse.Namespace) -> str | None:
    """The budget whose sizes apply: ``smoke`` with ``--smoke-test`` (also with ``--data`` or ``--config``),
    ``demo`` on the demo cohort, ``published`` on a cohort of your own; None with ``--config`` (its sizes)."""
    if args.smoke_test:
        return "smoke"
    if args.config:
        return None
    return "published" if args.data else "demo"


def configure(args: argparse.Namespace, image_kind: str):
    """The run's config for a cohort of ``image_kind``: the size's preset (or ``--config``), the method's
    encoder, loss, defaults and sizes (``xmodal.methods``), on the demo cohort its regime, then every ``--set``.

    The method is ``--method``, else ``--config``'s when it fits the cohort, else the cohort's default
    (cromotex for CXR, ptacl for cines). Without ``--method``, a ``--config`` that fits the cohort keeps
    its own encoder and loss settings.
    """
    from xmodal.config import apply_overrides, load_yaml, parse_override
    from xmodal.methods import DEFAULT_METHOD, METHODS, sized_config

    size = size_of(args)
    user = dict(parse_override(s) for s in args.set)
    if args.config:
        cfg = load_yaml(args.config)
        name = args.method or (cfg.method if METHODS[cfg.method].image_kind == image_kind else DEFAULT_METHOD[image_kind])
        if args.method or name != cfg.method or size is not None:
            cfg = apply_overrides(cfg, METHODS[name].overrides(size, image_encoder=cfg.model.image_encoder))
    else:
        cfg = sized_config(size, args.method or DEFAULT_METHOD[image_kind])
        if size == "demo":  # the synthetic demo cohort: its regime (xmodal.stages.chain.DEMO_REGIME)
            from xmodal.stages.chain import DEMO_REGIME

            cfg = apply_overrides(cfg, DEMO_REGIME[image_kind])
    if args.data:
        user["data.manifest"] = str(Path(args.data).resolve()) if "://" not in args.data else args.data
    if args.storage:
        user["data.storage"] = args.storage
    cfg = apply_overrides(cfg, user)
    if "://" not in cfg.data.storage:
        cfg = apply_overrides(cfg, {"data.storage": str(Path(cfg.data.storage).resolve())})
    return cfg


def demo_kind(args: argparse.Namespace) -> str:
    """The synthetic demo cohort's image kind: ``--cohort``, else the ``--method``'s, else CXR."""
    from xmodal.methods import METHODS

    if args.cohort:
        return "cine" if args.cohort == "cmr" else "cxr"
    return METHODS[args.method].image_kind if args.method else "cxr"


def build(args: argparse.Namespace):
    """Search options, space and budget from the command line (the config needs the cohort: :func:`configure`)."""
    from xmodal.search.driver import SearchOptions
    from xmodal.search.space import load_space

    budget = BUDGETS["smoke" if args.smoke_test else "default"]
    run = args.run or ("smoke" if args.smoke_test else "demo" if not args.data else time.strftime("%Y%m%d-%H%M%S"))
    if not args.run and not args.data and demo_kind(args) == "cine":
        run += "-cmr"  # reports/demo-cmr next to reports/demo
    if not args.run and not args.data and args.demo_seed:
        run += f"-seed{args.demo_seed}"  # another draw of the cohort: its own report and Tune state
    if args.data and (args.cohort or args.demo_seed):
        from xmodal.errors import ConfigError

        flag = "--cohort" if args.cohort else "--demo-seed"
        raise ConfigError(f"{flag} picks a synthetic demo cohort; it cannot be combined with --data")
    if args.tracking:  # a bad value, or no MLflow: one line now, before the cohort or Ray
        from xmodal.search.tracking import parse

        parse(args.tracking)
    opts = SearchOptions(
        run=run, num_samples=args.num_samples or budget["num_samples"], max_concurrent=args.max_concurrent,
        workers_per_trial=args.workers_per_trial, cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=args.gpus_per_worker, grace_period=args.grace_period,
        race_top=args.race_top or budget["race_top"], race_seeds=args.race_seeds or budget["race_seeds"],
        min_gain=args.min_gain,
        seed=args.seed, warm_start=args.warm_start, resume=args.resume, optuna_storage=args.optuna_storage,
        reports=args.reports, tracking=args.tracking)  # storage: <data.storage>/tune, once the config is known
    return opts, load_space(args.space or None), budget


def main(argv: list[str] | None = None) -> int:
    return exit_code(_main, parser().parse_args(argv))


def _main(args: argparse.Namespace) -> int:
    from xmodal.config import apply_overrides
    from xmodal.data.manifest import load_manifest
    from xmodal.report.render import header_text
    from xmodal.report.tables import console, fmt
    from xmodal.runtime import ensure_ray
    from xmodal.search.driver import DATA_CPUS_PER_TRIAL
    from xmodal.search.driver import resources as trial_resources
    from xmodal.search.run import default_pathologies, run_search, validate_pathologies
    from xmodal.search.tracking import Tracker, watch_lines
    from xmodal.stages.chain import DEFAULT_STORAGE, DEMO_SUBJECTS, demo_manifest
    from xmodal.storage import Storage

    opts, space, budget = build(args)
    t0 = time.time()
    if args.data:
        manifest_path = args.data
    else:
        kind = demo_kind(args)
        subjects = args.demo_subjects or budget["subjects"] or DEMO_SUBJECTS[kind]
        print(f"[xmodal] synthetic {'CMR' if kind == 'cine' else 'CXR'} demo cohort ({subjects} subjects; "
              "generated once, then cached)")
        manifest_path = str(demo_manifest(kind, subjects=subjects, seed=args.demo_seed,
                                          storage=args.storage or DEFAULT_STORAGE).resolve())
    manifest = load_manifest(manifest_path)
    kind = manifest["image_kind"].iloc[0]
    cfg = configure(args, kind)
    if not args.data:
        cfg = apply_overrides(cfg, {"data.manifest": manifest_path})
    opts = dataclasses.replace(opts, storage=Storage(cfg.data.storage).child("tune").uri)
    pathologies = args.pathologies or list(default_pathologies(kind))[: 1 if args.smoke_test else None]
    validate_pathologies(pathologies, manifest, cfg.data.manifest)
    tracker = Tracker.of(opts)  # an unreachable server or a bad store stops here, in one line

    need = trial_resources(opts)
    per_trial = int(need["CPU"] + DATA_CPUS_PER_TRIAL)
    # Local Ray: room for one training trial per core (each trains on one thread), plus their Tune
    # functions and Data reads, which mostly wait: 6 logical CPUs and 2 trials at once on 2 cores.
    num_cpus = args.num_cpus or per_trial * max(1, opts.max_concurrent or (os.cpu_count() or 1))
    cluster = ensure_ray(num_cpus)
    print(f"[xmodal] Ray: {cluster.get('CPU', 0):g} logical CPUs, {cluster.get('GPU', 0):g} GPUs; "
          f"method {cfg.method}; pathologies {', '.join(pathologies)}; run '{opts.run}'")
    for line in watch_lines(opts, tracker):
        print(f"[xmodal] {line}")
    results = run_search(cfg, pathologies, space, opts, cluster=cluster, tracker=tracker)

    rows = []
    for r in results:
        s, sel = r.summary, r.summary["selection"]
        gain = sel["delta_vs_published"]
        rows.append([r.pathology, sel["chosen"], header_text(r.config, " "),
                     fmt(s["val"]["published"]["mean_val_auroc"]), fmt(s["val"]["recommended"]["mean_val_auroc"]),
                     fmt(s["val"]["baseline"]["mean_val_auroc"]),
                     "–" if gain["estimate"] is None else f"{gain['estimate']:+.3f} [{gain['lo']:+.3f}, {gain['hi']:+.3f}]",
                     fmt(s["test"]["recommended"]["auroc"])])
    print("\n" + console(["pathology", "chosen", "recommended", "val published", "val recommended", "val ECG-only",
                          "best found vs published", "test recommended"], rows))
    out = Path(opts.reports) / opts.run
    print(f"\nreport: {out / 'summary.md'}   recommended configs: {out}/<pathology>/recommended.yaml   "
          f"({(time.time() - t0) / 60:.1f} min)")
    return 0
