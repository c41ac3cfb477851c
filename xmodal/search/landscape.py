"""The loss landscape: a grid of AHNP settings × seeds per pathology, trained to the end and scored on the
same validation pairs, so that which region of the settings wins (and by how much beyond noise) is
measured rather than assumed. ``searches/landscape.py`` runs it; :mod:`xmodal.report.landscape` draws it.

It resumes where it stopped: every (pathology, point, seed) is stored as one JSON file (its validation
logits) under ``<out>/results/`` the moment it finishes, and a rerun trains only what is missing.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from xmodal.search.race import Interval, delong_components, gain_of, pooled_seed_variance


@dataclass(frozen=True)
class Grid:
    """strategy × τ (× α where it applies). ``k`` and ``β`` stay at the published values unless set."""

    strategies: tuple[str, ...] = ("none", "topk", "linear", "exp")
    taus: tuple[float, ...] = (0.01, 0.05, 0.2)
    alphas: tuple[float, ...] = (2.0, 6.0)
    k: float = 0.075
    beta: float = 2.0

    def points(self) -> list[dict[str, Any]]:
        """Every grid point as dotted-key overrides (``none`` has no α)."""
        out = []
        for strategy, tau in itertools.product(self.strategies, self.taus):
            for alpha in ((None,) if strategy == "none" else self.alphas):
                p: dict[str, Any] = {"loss.strategy": strategy, "loss.tau": tau, "loss.beta": self.beta}
                if alpha is not None:
                    p["loss.alpha"] = alpha
                if strategy == "topk":
                    p["loss.k"] = self.k
                out.append(p)
        return out


def point_id(point: dict[str, Any]) -> str:
    """A short, stable name of a grid point: ``exp-t0.05-a2-<hash>``."""
    s, t, a = point["loss.strategy"], point["loss.tau"], point.get("loss.alpha")
    h = hashlib.sha1(json.dumps(point, sort_keys=True).encode()).hexdigest()[:6]
    return f"{s}-t{t:g}" + (f"-a{a:g}" if a is not None else "") + f"-{h}"


class Results:
    """The stored results under ``root``: ``<pathology>/<point id>/seed-<s>.json`` (validation logits)
    and ``<pathology>/labels.json`` (the validation labels, the same for every point)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, pathology: str, point: dict, seed: int) -> Path:
        return self.root / pathology / point_id(point) / f"seed-{seed}.json"

    def has(self, pathology: str, point: dict, seed: int) -> bool:
        return self.path(pathology, point, seed).is_file()

    def write(self, pathology: str, point: dict, seed: int, labels: np.ndarray, logits: np.ndarray,
              seconds: float) -> None:
        lab = self.root / pathology / "labels.json"
        lab.parent.mkdir(parents=True, exist_ok=True)
        if lab.is_file():
            if not np.array_equal(np.asarray(json.loads(lab.read_text())), labels):
                raise ValueError(f"{lab}: the validation labels changed; a landscape scores one set of pairs")
        else:
            _atomic(lab, json.dumps(labels.astype(int).tolist()))
        p = self.path(pathology, point, seed)
        p.parent.mkdir(parents=True, exist_ok=True)
        _atomic(p, json.dumps({"point": point, "seed": seed, "seconds": round(seconds, 1),
                               "logits": np.round(logits.astype(float), 5).tolist()}))

    def check_base(self, base: dict[str, Any]) -> None:
        """Record the base config (dotted keys) the stored runs were trained with, or refuse a different one:
        a landscape compares points trained alike, so a resume must not mix two setups. A setting added to
        the config since the runs were stored matches at its default."""
        from xmodal.config import ExperimentConfig
        from xmodal.errors import SearchError

        f = self.root / "base.json"
        if f.is_file():
            old = json.loads(f.read_text())
            added = {k for k, v in base_fingerprint(ExperimentConfig()).items() if k not in old and base.get(k) == v}
            diff = sorted(k for k in (set(old) | set(base)) - added if old.get(k) != base.get(k))
            if diff:
                raise SearchError(f"{f}: the stored runs were trained with another base config (differs in "
                                  f"{', '.join(diff[:6])}{' ...' if len(diff) > 6 else ''}); use another --out "
                                  "or remove that folder")
            return
        f.parent.mkdir(parents=True, exist_ok=True)
        _atomic(f, json.dumps(base, indent=1, sort_keys=True))

    def labels(self, pathology: str) -> np.ndarray:
        return np.asarray(json.loads((self.root / pathology / "labels.json").read_text()))

    def read(self, pathology: str) -> dict[str, dict[int, np.ndarray]]:
        """``{point id: {seed: logits (N,)}}`` of every stored result."""
        out: dict[str, dict[int, np.ndarray]] = {}
        for f in sorted((self.root / pathology).glob("*/seed-*.json")):
            r = json.loads(f.read_text())
            out.setdefault(f.parent.name, {})[int(r["seed"])] = np.asarray(r["logits"])
        return out

    def points(self, pathology: str) -> dict[str, dict]:
        """``{point id: point}`` of every stored result."""
        return {f.parent.name: json.loads(f.read_text())["point"]
                for f in sorted((self.root / pathology).glob("*/seed-*.json"))}


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def pending(results: Results, pathology: str, points: list[dict], seeds: list[int]) -> list[tuple[dict, int]]:
    """The (point, seed) runs not stored yet, seed-major (every point gets seed 1 before any gets seed 2,
    so an interrupted landscape is usable early)."""
    return [(p, s) for s in seeds for p in points if not results.has(pathology, p, s)]


def batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


@dataclass(frozen=True)
class PointSummary:
    point_id: str
    point: dict
    seeds: int
    mean_auroc: float
    sd_auroc: float
    gain_vs_best: Interval | None  # None for the best point itself
    resolved_worse: bool  # the gain's 95 % CI lies below 0


def analyse(results: Results, pathology: str) -> list[PointSummary]:
    """Every stored point's mean validation AUROC over its seeds and its paired gain over the best point
    (seeds it shares with the best; seed variance pooled over the comparisons; DeLong for the pairs),
    best first."""
    y = results.labels(pathology)
    logits, points = results.read(pathology), results.points(pathology)
    comps = {pid: {s: delong_components(y, x) for s, x in by_seed.items()} for pid, by_seed in logits.items()}
    mean = {pid: float(np.mean([c[0] for c in by_seed.values()])) for pid, by_seed in comps.items()}
    best = max(mean, key=mean.get)
    shared = {pid: sorted(set(comps[pid]) & set(comps[best])) for pid in comps if pid != best}
    pooled = pooled_seed_variance([([comps[pid][s] for s in ss], [comps[best][s] for s in ss])
                                   for pid, ss in shared.items() if ss])
    out = []
    for pid in sorted(comps, key=mean.get, reverse=True):
        aucs = [c[0] for c in comps[pid].values()]
        gain = None
        if pid != best and shared[pid]:
            ss = shared[pid]
            gain = gain_of([comps[pid][s] for s in ss], [comps[best][s] for s in ss], seed_var=pooled)
        out.append(PointSummary(pid, points[pid], len(aucs), float(np.mean(aucs)), float(np.std(aucs)), gain,
                                bool(gain is not None and gain.hi < 0)))
    return out


def run_pathology(base, pathology: str, grid: Grid, seeds: list[int], results: Results, opts, *, storage: str,
                  concurrency: int, log=print) -> None:
    """Train every missing (point, seed) of ``pathology`` (``concurrency`` at a time, one Tune grid run per
    batch) and store each one's validation logits as it lands."""
    from xmodal.search.driver import base_for
    from xmodal.search.run import seed_overrides, train_and_score
    from xmodal.stages.chain import check_cohort, prepare, run_shared
    from xmodal.stages.store import StageStore

    base = base_for(base, pathology, opts)
    todo = pending(results, pathology, grid.points(), seeds)
    total = len(grid.points()) * len(seeds)
    log(f"== {pathology}: {total - len(todo)} of {total} runs stored, {len(todo)} to train")
    if not todo:
        return
    shards = prepare(base)
    check_cohort(shards, base)
    run_shared(base, shards, verbose=True)
    store = StageStore(shards.storage)
    t0, done = time.time(), 0
    for batch in batches(todo, concurrency):
        runs = [seed_overrides(p, s) for p, s in batch]
        tag = "landscape-" + hashlib.sha1(json.dumps(runs, sort_keys=True).encode()).hexdigest()[:10]
        tb = time.time()
        _, labels, scored = train_and_score(runs, base, opts, shards=shards, store=store, storage=storage, tag=tag,
                                            concurrency=concurrency)
        for i, (p, s) in enumerate(batch):
            if i in scored:
                results.write(pathology, p, s, labels, scored[i], time.time() - tb)
        done += len(batch)
        rate = (time.time() - t0) / done
        failed = [point_id(p) + f" seed {s}" for i, (p, s) in enumerate(batch) if i not in scored]
        log(f"  [{pathology}] {total - len(todo) + done}/{total} stored"
            f"{'; failed: ' + ', '.join(failed) if failed else ''}; {rate:.0f} s per run, "
            f"about {rate * (len(todo) - done) / 60:.0f} min left for this pathology")


def parser():
    import argparse

    p = argparse.ArgumentParser(prog="landscape.py", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--data", default="", help="cohort manifest; default: a synthetic CXR cohort of --subjects (cached)")
    a("--subjects", type=int, default=2000, help="size of the synthetic cohort when no --data")
    a("--cohort-seed", type=int, default=0, help="seed of the synthetic cohort when no --data")
    a("--size", default="demo", choices=["smoke", "demo", "published"], help="model and image sizes")
    a("--config", default="", help="base config YAML (instead of --size's)")
    a("--set", action="append", default=[], metavar="KEY=VALUE", help="dotted-key override of the base config")
    a("--pathologies", nargs="+", default=None, help="default: the cohort's CXR labels")
    a("--seeds", type=int, default=3, help="seeds per point (align/finetune seeds 1..N)")
    a("--strategies", nargs="+", default=list(Grid.strategies))
    a("--taus", nargs="+", type=float, default=list(Grid.taus))
    a("--alphas", nargs="+", type=float, default=list(Grid.alphas))
    a("--storage", default=".cache/landscape", help="stage cache and Tune state")
    a("--out", default="reports/landscape", help="report folder; results/ under it holds every stored run")
    a("--max-concurrent", type=int, default=2, help="runs trained side by side")
    a("--analyse-only", action="store_true", help="write the report from the stored results; train nothing")
    return p


def main(argv: list[str] | None = None) -> int:
    from xmodal.errors import exit_code

    return exit_code(_main, parser().parse_args(argv))


def _main(args) -> int:
    import dataclasses

    from xmodal.config import apply_overrides, load_yaml, parse_override
    from xmodal.methods import sized_config
    from xmodal.report import landscape as report
    from xmodal.search.driver import SearchOptions
    from xmodal.search.run import CXR_PATHOLOGIES
    from xmodal.stages.chain import demo_manifest

    grid = Grid(strategies=tuple(args.strategies), taus=tuple(args.taus), alphas=tuple(args.alphas))
    out = Path(args.out)
    results = Results(out / "results")
    storage = str(Path(args.storage).resolve())
    manifest = args.data or str(demo_manifest("cxr", subjects=args.subjects, seed=args.cohort_seed,
                                              storage=storage).resolve())
    cfg = load_yaml(args.config) if args.config else sized_config(args.size, "cromotex")
    cfg = apply_overrides(cfg, {"data.manifest": manifest, "data.storage": storage,
                                **dict(parse_override(s) for s in args.set)})
    pathologies = args.pathologies or list(CXR_PATHOLOGIES)
    seeds = list(range(1, args.seeds + 1))
    results.check_base(base_fingerprint(cfg))
    if not args.analyse_only:
        from xmodal.runtime import ensure_ray

        ensure_ray(3 * args.max_concurrent)  # per run: its Tune function, its worker, its Data reads
        opts = dataclasses.replace(SearchOptions(run="landscape", max_failures=1), storage=f"{storage}/tune")
        for p in pathologies:
            run_pathology(cfg, p, grid, seeds, results, opts, storage=opts.storage, concurrency=args.max_concurrent)
            report.write({q: analyse(results, q) for q in pathologies if (results.root / q / "labels.json").exists()},
                         out, _meta(args, grid, manifest))
    report.write({q: analyse(results, q) for q in pathologies if (results.root / q / "labels.json").exists()},
                 out, _meta(args, grid, manifest))
    print(f"landscape: {out / 'landscape.md'}")
    return 0


def base_fingerprint(cfg) -> dict[str, Any]:
    """The base config as dotted keys, without paths and what each point sets."""
    from xmodal.config import flatten

    point_keys = {"loss.strategy", "loss.tau", "loss.alpha", "loss.beta", "loss.k"}
    where = {"data.storage", "data.manifest", "data.pathology"}  # the cohort itself is checked by its labels
    return {k: v for k, v in flatten(cfg).items() if k not in where | point_keys}


def _meta(args, grid: Grid, manifest: str) -> dict[str, Any]:
    cohort = (f"the synthetic CXR cohort of {args.subjects} subjects (seed {args.cohort_seed})" if not args.data
              else "the cohort given with --data")
    return {"intro": (f"CroMoTEX on {cohort}, {args.size} sizes: strategy × τ (× α), k = {grid.k:g} for topk, "
                      f"β = {grid.beta:g}; up to {args.seeds} seeds per point (align and fine-tune seeds; the shared "
                      "stages are trained once). Each point's validation AUROC is the mean over its seeds; its gain "
                      "over the best point is paired (the same seeds and validation pairs), with a 95 % CI counting "
                      "the seeds (pooled) and the pairs (DeLong)."),
            "grid": dataclasses_asdict(grid), "seeds": args.seeds, "size": args.size,
            "cohort": {"subjects": args.subjects, "seed": args.cohort_seed} if not args.data else "user"}


def dataclasses_asdict(grid: Grid) -> dict[str, Any]:
    import dataclasses

    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(grid).items()}
