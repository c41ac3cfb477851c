"""The whole per-pathology search: shared stages once, Tune search, seed refits, one final test pass,
recommended configs and the report.

Pathologies run one after another in one job (each ``Tuner`` already fills the cluster with
concurrent trials). To run pathologies concurrently on a large cluster, submit one job per
pathology (``--pathologies edema``) with a shared ``--storage``: the stage cache is shared.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xmodal.config import ExperimentConfig, apply_overrides
from xmodal.errors import SearchError
from xmodal.search.driver import SearchOptions, base_for, max_concurrent, overrides_of, refit, tune_pathology
from xmodal.search.progress import ProgressLine
from xmodal.search.space import SearchSpace, published_point
from xmodal.storage import Storage

CXR_PATHOLOGIES = ("cardiomegaly", "pleural_effusion", "edema")
CMR_PATHOLOGIES = ("mi", "cardiomyopathy", "af", "hf")


@dataclass
class PathologyResult:
    pathology: str
    trials: pd.DataFrame
    refits: pd.DataFrame
    recommended: dict[str, Any]  # overrides of the recommended config
    config: ExperimentConfig
    summary: dict[str, Any] = field(default_factory=dict)  # val/test tables for the report
    artefacts: dict[str, Any] = field(default_factory=dict)  # arrays for plots (no identifiers)
    optuna: tuple[str, str] = ("", "")


def default_pathologies(image_kind: str) -> tuple[str, ...]:
    return CXR_PATHOLOGIES if image_kind == "cxr" else CMR_PATHOLOGIES


def validate_pathologies(pathologies: list[str], manifest: pd.DataFrame, where: str) -> None:
    """Refuse, before Ray starts: a pathology the manifest has no label for, or one that cannot be
    trained and selected on (an empty train/val split, a single class)."""
    from xmodal.data.manifest import label_columns, label_split_problem

    labels = tuple(label_columns(manifest))
    bad = [p for p in pathologies if p not in labels]
    if bad:
        raise SearchError(f"unknown pathology {', '.join(map(repr, bad))}: {where} has labels {', '.join(labels)}")
    for p in pathologies:
        problem = label_split_problem(manifest["split"], manifest[p], p)
        if problem:
            raise SearchError(f"{where}: {problem}")


def _group(refits: pd.DataFrame, configs: list[dict], seeds: int) -> pd.DataFrame:
    """Mean/sd validation AUROC per refit config, over its seeds (matched by their overrides)."""
    keyed = [overrides_of(r) for _, r in refits.iterrows()]
    rows = []
    for ci, over in enumerate(configs):
        runs = [{**over, "align.seed": s, "finetune.seed": s} for s in range(seeds)]
        block = refits.iloc[[i for i, k in enumerate(keyed) if any(_same(k, r) for r in runs)]]
        vals = block["val_auroc"].astype(float)
        rows.append({"config": ci, "mean_val_auroc": vals.mean(), "sd_val_auroc": vals.std(ddof=0),
                     "mean_val_auprc": block["val_auprc"].astype(float).mean(), "n_ok": int(vals.notna().sum())})
    return pd.DataFrame(rows)


def pick_recommended(grouped: pd.DataFrame, n_candidates: int) -> int:
    """Row of the refit config with the best mean validation AUROC among the first ``n_candidates`` (the
    best found and the published defaults, not the ECG-only baseline): when the published defaults refit
    better than every config the search found, they are the recommendation, so a search never
    recommends worse than the defaults it started from."""
    return int(grouped.iloc[:n_candidates]["mean_val_auroc"].idxmax())


def search_one(cfg: ExperimentConfig, pathology: str, space: SearchSpace, opts: SearchOptions, *,
               cluster: dict, storage: str, warm_points: list[dict]) -> PathologyResult:
    from xmodal.stages.chain import check_cohort, predict_many, prepare, run_shared
    from xmodal.stages.store import StageStore

    base = base_for(cfg, pathology, opts)
    shards = prepare(base)  # says how the cohort is stored when it preprocesses it (once)
    check_cohort(shards, base)
    conc = max_concurrent(opts, cluster)
    t0 = time.time()
    print(f"\n== {pathology}: shared stages (image_pretrain, ecg_ssl, image features)")
    shared, _ = run_shared(base, shards, verbose=True)  # trials then start at align
    store = StageStore(shards.storage)

    print(f"== {pathology}: searching {opts.num_samples} trials, {conc} at a time "
          f"(published defaults first{', warm-started' if warm_points else ''})")
    progress = ProgressLine(pathology, opts.num_samples)
    trials, db, study = tune_pathology(base, space, opts, storage=storage, extra_points=warm_points,
                                       callbacks=[progress], concurrency=conc)
    done = trials[trials["status"] == "completed"].sort_values("val_auroc", ascending=False)
    if done.empty:
        raise SearchError(f"{pathology}: every trial failed; first error: {trials['error'].iloc[0]}")

    # Refit: the best distinct configs, the published defaults and the ECG-only baseline, several seeds each.
    top: list[dict] = []
    for _, row in done.iterrows():
        over = overrides_of(row)
        if over not in top:
            top.append(over)
        if len(top) == opts.refit_top:
            break
    published = published_point(base.method, base.align.lr)
    baseline = {"finetune.init": "ssl"}
    published_ci = next((i for i, c in enumerate(top) if _same(c, published)), None)
    if published_ci is None:
        top_and_published, published_ci = top + [published], len(top)
    else:  # the published defaults are among the best: refit them once
        top_and_published = top
    configs = top_and_published + [baseline]
    seeded = [{**c, "align.seed": s, "finetune.seed": s} for c in configs for s in range(opts.refit_seeds)]
    print(f"== {pathology}: refitting {len(top)} best (published defaults "
          f"{'among them' if len(top_and_published) == len(top) else 'added'}) + ECG-only baseline "
          f"× {opts.refit_seeds} seeds")
    refits = refit(seeded, base, opts, storage=storage, tag="refit", callbacks=[ProgressLine(pathology, len(seeded),
                                                                                            "refit")],
                   concurrency=conc)
    grouped = _group(refits, configs, opts.refit_seeds)
    best_ci = pick_recommended(grouped, len(top_and_published))
    recommended = top_and_published[best_ci]

    # One pass over the test split, for the recommended config's seeds, published defaults and baseline.
    roles = {"recommended": best_ci, "published": published_ci, "baseline": len(configs) - 1}
    members = {role: [apply_overrides(base, seeded[ci * opts.refit_seeds + s]) for s in range(opts.refit_seeds)]
               for role, ci in roles.items()}
    test = predict_many(shards, store, members, split="test")
    val = predict_many(shards, store, {"recommended": members["recommended"][:1],
                                       "baseline": members["baseline"][:1]}, split="val")
    rec_cfg = members["recommended"][0]
    aligned_from_ssl = rec_cfg.finetune.init == "align" and rec_cfg.align.init == "ssl"
    emb = _embeddings(rec_cfg, shards, store) if aligned_from_ssl else {}

    summary = {"val": {role: grouped.iloc[ci].to_dict() for role, ci in roles.items()},
               "test": {role: v["metrics"] for role, v in test.items()},
               "image_only_val_auroc": _image_only(shared, pathology),
               "trials": int(len(trials)), "completed": int(len(done)),
               "stopped": int((trials["status"] == "stopped").sum()), "errors": int((trials["status"] == "error").sum()),
               "minutes": (time.time() - t0) / 60, "concurrency": conc}
    artefacts = {"roc_val": val, "roc_test": test, "embeddings": emb}
    return PathologyResult(pathology, trials, refits, recommended, apply_overrides(base, recommended), summary,
                           artefacts, (db, study))


def _same(a: dict, b: dict) -> bool:
    """Two override sets name the same config (floats compared to 6 significant digits)."""
    norm = lambda d: {k: (float(f"{v:.6g}") if isinstance(v, float) else v) for k, v in d.items()}  # noqa: E731
    return norm(a) == norm(b)


def _image_only(shared: dict, pathology: str) -> float:
    best = shared["image_pretrain"].metrics.get("best", {}) if "image_pretrain" in shared else {}
    return float(best.get(f"val_auroc_{pathology}", float("nan")))


def _embeddings(cfg: ExperimentConfig, shards, store) -> dict[str, np.ndarray]:
    """ECG embeddings of validation ECGs before (SSL encoder) and after alignment, for the PCA plot."""
    from xmodal.stages import align, ecg_ssl
    from xmodal.stages.chain import run_chain
    from xmodal.stages.evaluate import embed_split

    res = run_chain(cfg, shards=shards, verbose=False)  # cached: resolves the keys, trains nothing
    before = ecg_ssl.encoder_state(store, res.stages["ecg_ssl"].key)
    after = align.encoder_state(store, res.stages["align"].key)
    y, eb, ea = embed_split(cfg, shards, [before, after], split="val")
    return {"labels": y, "before": eb, "after": ea}


def run_search(cfg: ExperimentConfig, pathologies: list[str], space: SearchSpace, opts: SearchOptions,
               *, cluster: dict) -> list[PathologyResult]:
    from xmodal.report.render import write_pathology, write_summary

    storage = opts.storage or Storage(cfg.data.storage).child("tune").uri
    remote = "://" in opts.reports
    out = Path(tempfile.mkdtemp(prefix="xmodal-report-")) if remote else Path(opts.reports) / opts.run
    results: list[PathologyResult] = []
    for p in pathologies:
        warm = [r.recommended for r in results] if opts.warm_start else []
        res = search_one(cfg, p, space, opts, cluster=cluster, storage=storage, warm_points=warm)
        write_pathology(res, out / p)
        results.append(res)
        write_summary(results, out, opts)
        if remote:  # s3:// or gs:// reports: written locally, then copied up after each pathology
            Storage(opts.reports).upload_dir(out, opts.run)
    return results
