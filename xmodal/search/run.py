"""The whole per-pathology search: shared stages once, Tune search, the race of the best against the
published defaults on shared seeds (:mod:`xmodal.search.race`), one final test pass, recommended configs
and the report.

Pathologies run one after another in one job (each ``Tuner`` already fills the cluster with
concurrent trials). To run pathologies concurrently on a large cluster, submit one job per
pathology (``--pathologies edema``) with a shared ``--storage``: the stage cache is shared.
"""

from __future__ import annotations

import contextlib
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
from xmodal.search.race import Interval, Race, RaceRules, Selection, auroc, delong_components, gain_of
from xmodal.search.progress import ProgressLine
from xmodal.search.space import SearchSpace, published_point
from xmodal.storage import Storage

CXR_PATHOLOGIES = ("cardiomegaly", "pleural_effusion", "edema")
CMR_PATHOLOGIES = ("mi", "cardiomyopathy", "af", "hf")


@dataclass
class PathologyResult:
    pathology: str
    trials: pd.DataFrame
    race: pd.DataFrame  # one row per trained (candidate, seed) of the race
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


def search_one(cfg: ExperimentConfig, pathology: str, space: SearchSpace, opts: SearchOptions, *,
               cluster: dict, storage: str, warm_points: list[dict], track=None) -> PathologyResult:
    """``track``: the pathology's MLflow run (:class:`xmodal.search.tracking.PathologyRun`), or None."""
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
                                       callbacks=[progress, *(track.callbacks("search") if track else [])],
                                       concurrency=conc)
    done = trials[trials["status"] == "completed"].sort_values("val_auroc", ascending=False)
    if done.empty:
        raise SearchError(f"{pathology}: every trial failed; first error: {trials['error'].iloc[0]}")

    racers, published_ci = race_entrants(trials, published_point(base.method, base.align.lr), opts.race_top)
    print(f"== {pathology}: racing {len(racers) - 1} best found against the published defaults on up to "
          f"{opts.race_seeds} fresh seeds, with the ECG-only baseline on the same seeds")
    race, frame, logits = race_pathology(base, racers, published_ci, opts, shards=shards, store=store,
                                         storage=storage, concurrency=conc, track=track)
    sel = race.verdict()
    recommended = racers[sel.winner]
    seeds = [s for s in sel.seeds[sel.winner] if (BASELINE_ROLE, s) in logits]  # shared with ECG-only
    if not seeds:
        raise SearchError(f"{pathology}: the ECG-only baseline failed on every seed the recommendation trained on")
    y = race.labels
    ecg_only = gain_of([race.scores[sel.winner][s] for s in seeds],
                       [delong_components(y, logits[BASELINE_ROLE, s]) for s in seeds])
    print(f"== {pathology}: {sel.sentence}")

    # One pass over the test split: the recommendation, the published defaults and ECG-only, on their race seeds.
    members = {"recommended": [seeded(base, recommended, s) for s in seeds],
               "published": [seeded(base, racers[published_ci], s) for s in sel.seeds[published_ci]],
               "baseline": [seeded(base, BASELINE, s) for s in seeds]}
    test = predict_many(shards, store, members, split="test")
    if track:
        track.final(test, recommended,
                    {"recommended": seeds, "published": sel.seeds[published_ci], "baseline": seeds})
    rec_cfg = members["recommended"][0]
    aligned_from_ssl = rec_cfg.finetune.init == "align" and rec_cfg.align.init == "ssl"
    emb = _embeddings(rec_cfg, shards, store) if aligned_from_ssl else {}

    val_of = {"recommended": (sel.winner, seeds), "published": (published_ci, sel.seeds[published_ci]),
              "baseline": (BASELINE_ROLE, seeds)}
    val = {role: _val_summary(y, [logits[c, s] for s in ss]) for role, (c, ss) in val_of.items()}
    summary = {"val": val, "test": {role: v["metrics"] for role, v in test.items()},
               "image_only_val_auroc": _image_only(shared, pathology),
               "selection": selection_block(sel, racers, published_ci, base, ecg_only),
               "race": race_table(race, sel, racers, base),
               "trials": int(len(trials)), "completed": int(len(done)),
               "stopped": int((trials["status"] == "stopped").sum()), "errors": int((trials["status"] == "error").sum()),
               "minutes": (time.time() - t0) / 60, "concurrency": conc}
    roc_val = {role: {"labels": y, "scores": np.mean([logits[c, s] for s in ss], axis=0)}
               for role, (c, ss) in val_of.items() if role != "published"}
    artefacts = {"roc_val": roc_val, "roc_test": test, "embeddings": emb}
    return PathologyResult(pathology, trials, frame, recommended, apply_overrides(base, recommended), summary,
                           artefacts, (db, study))


BASELINE = {"finetune.init": "ssl"}  # ECG-only: fine-tuned from the SSL encoder, no alignment
BASELINE_ROLE = -1  # the baseline's index in the race's logits (not a racer)


def race_entrants(trials: pd.DataFrame, published: dict, k: int) -> tuple[list[dict], int]:
    """The best ``k`` distinct configs other than the published defaults, then the published defaults
    (last); returns ``(configs, index of the published defaults)``.

    Completed trials come first, by validation AUROC; when fewer than ``k`` completed, the trials ASHA
    stopped fill the race, by their last validation AUROC (ASHA's early judgement is the noisy one the
    race exists to check). Failed trials never enter."""
    done = trials[trials["status"] == "completed"].sort_values("val_auroc", ascending=False)
    stopped = trials[trials["status"] == "stopped"].sort_values("last_val_auroc", ascending=False)
    found: list[dict] = []
    for _, row in pd.concat([done, stopped]).iterrows():
        over = overrides_of(row)
        if len(found) < k and not _same(over, published) and not any(_same(over, f) for f in found):
            found.append(over)
    return found + [published], len(found)


def race_seeds(opts: SearchOptions) -> list[int]:
    """The race's seeds: fresh ones, after the seed every search trial trains with (``align.seed`` 0)."""
    return list(range(1, opts.race_seeds + 1))


def seeded(base: ExperimentConfig, over: dict, seed: int) -> ExperimentConfig:
    return apply_overrides(base, seed_overrides(over, seed))


def seed_overrides(over: dict, seed: int) -> dict:
    return {**over, "align.seed": seed, "finetune.seed": seed}


def race_pathology(base: ExperimentConfig, racers: list[dict], published: int, opts: SearchOptions, *, shards,
                   store, storage: str, concurrency: int, track=None) -> tuple[Race, pd.DataFrame, dict]:
    """Run the race: each round trains the candidates still in it and the ECG-only baseline on one more seed
    (one Tune run per round, resumable), scores them all on the validation pairs and lets :class:`Race`
    drop the clearly worse. Returns the race, one row per trained (candidate, seed) and their validation
    logits by ``(candidate or BASELINE_ROLE, seed)``."""
    race = Race(len(racers), published, race_seeds(opts), RaceRules(min_gain=opts.min_gain))
    logits: dict[tuple[int, int], np.ndarray] = {}
    rows = []
    while (nxt := race.pending()) is not None:
        seed, alive = nxt
        entries = [(c, racers[c]) for c in alive] + [(BASELINE_ROLE, BASELINE)]
        runs = [seed_overrides(over, seed) for _, over in entries]
        tag, names = f"race-{race.rounds + 1}", [(run, _name(c, published)) for (c, _), run in zip(entries, runs)]
        status, labels, scored = train_and_score(
            runs, base, opts, shards=shards, store=store, storage=storage, tag=tag, concurrency=concurrency,
            callbacks=[ProgressLine(base.data.pathology, len(runs), f"race round {race.rounds + 1}"),
                       *(track.callbacks(tag, names) if track else [])])
        for i, (c, _) in enumerate(entries):
            if i in scored:
                logits[c, seed] = scored[i]
            rows.append({"round": race.rounds + 1, "candidate": _name(c, published), "seed": seed,
                         **{f"param:{k}": v for k, v in runs[i].items()}, "status": status[i],
                         "val_auroc": auroc(labels, scored[i]) if i in scored else None})
        if labels is None:
            raise SearchError(f"{base.data.pathology}: every race trial of round {race.rounds + 1} failed")
        race.record(seed, labels, {c: logits.get((c, seed)) for c, _ in entries if c != BASELINE_ROLE})
    return race, pd.DataFrame(rows), logits


def train_and_score(runs: list[dict], base: ExperimentConfig, opts: SearchOptions, *, shards, store, storage: str,
                    tag: str, concurrency: int, callbacks: list | None = None
                    ) -> tuple[list[str], np.ndarray | None, dict[int, np.ndarray]]:
    """Train each override set in ``runs`` to the end (one Tune run named ``tag``, resumable) and score the
    completed ones on the validation pairs: ``(status per run, labels (N,) or None, {run index: logits (N,)})``."""
    from xmodal.stages.chain import predict_many

    frame = refit(runs, base, opts, storage=storage, tag=tag, concurrency=concurrency, callbacks=callbacks)
    status = [_status_of(frame, run) for run in runs]
    ok = {i: apply_overrides(base, run) for i, run in enumerate(runs) if status[i] == "completed"}
    if not ok:
        return status, None, {}
    pred = predict_many(shards, store, {str(i): [c] for i, c in ok.items()}, split="val", n_boot=0)
    return status, next(iter(pred.values()))["labels"], {i: pred[str(i)]["scores"] for i in ok}


def _status_of(frame: pd.DataFrame, run: dict) -> str:
    for _, row in frame.iterrows():
        if _same(overrides_of(row), run):
            return row["status"]
    return "error"


def _name(c: int, published: int) -> str:
    return "ECG-only" if c == BASELINE_ROLE else "published" if c == published else f"found-{c + 1}"


def _val_summary(y: np.ndarray, member_logits: list[np.ndarray]) -> dict[str, float]:
    """Mean/sd over seeds of the validation AUROC and mean AUPRC (the report's validation columns)."""
    from sklearn.metrics import average_precision_score

    aucs = [auroc(y, s) for s in member_logits]
    return {"mean_val_auroc": float(np.mean(aucs)), "sd_val_auroc": float(np.std(aucs)),
            "mean_val_auprc": float(np.mean([average_precision_score(y, s) for s in member_logits])),
            "n_ok": len(aucs)}


def selection_block(sel: Selection, racers: list[dict], published: int, base: ExperimentConfig,
                    ecg_only: Interval) -> dict:
    """The ``selection`` block of ``recommended.yaml`` (and of ``summary.json``)."""
    from xmodal.report.render import header_text

    names = {c: _name(c, published) for c in range(len(racers))}
    return {"rule": sel.rule, "chosen": sel.chosen, "sentence": sel.sentence,
            "delta_vs_published": sel.delta_vs_published.to_dict() if sel.delta_vs_published else
            {"estimate": None, "lo": None, "hi": None},
            "delta_vs_ecg_only": ecg_only.to_dict(),
            "candidates": {names[c]: header_text(apply_overrides(base, racers[c])) for c in range(len(racers))},
            "seeds": {names[c]: list(sel.seeds[c]) for c in range(len(racers))},
            "dropped": [{"candidate": names[c], "round": r, "reason": why} for c, (r, why) in sel.dropped.items()],
            "rounds": sel.rounds}


def race_table(race: Race, sel: Selection, racers: list[dict], base: ExperimentConfig) -> list[dict]:
    """One row per racer: its settings, seeds, mean validation AUROC, gain over the published defaults
    (the guard's interval) and fate (``sel``: the race's verdict)."""
    from xmodal.report.render import header_text

    rows = []
    for c in range(race.n):
        gain = race.gain_over_published(c) if c != race.published else None
        fate = ("recommended" if c == sel.winner else f"dropped in round {race.dropped[c][0]}" if c in race.dropped
                else "kept to the end")
        rows.append({"candidate": _name(c, race.published), "settings": header_text(apply_overrides(base, racers[c])),
                     "seeds": len(sel.seeds[c]), "val_auroc": race.mean_auroc(c),
                     "gain_vs_published": gain.to_dict() if gain else None, "fate": fate})
    return rows


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
               *, cluster: dict, tracker=None) -> list[PathologyResult]:
    """``tracker``: the search's MLflow experiment (:class:`xmodal.search.tracking.Tracker`); by default the
    one ``opts.tracking`` names, if any."""
    from xmodal.report.render import write_pathology, write_summary

    storage = opts.storage or Storage(cfg.data.storage).child("tune").uri
    if tracker is None and opts.tracking:
        from xmodal.search.tracking import Tracker

        tracker = Tracker(opts.tracking, opts.run, storage)
    remote = "://" in opts.reports
    out = Path(tempfile.mkdtemp(prefix="xmodal-report-")) if remote else Path(opts.reports) / opts.run
    results: list[PathologyResult] = []
    for p in pathologies:
        warm = [r.recommended for r in results] if opts.warm_start else []
        with tracker.pathology(p, base_for(cfg, p, opts), opts) if tracker else contextlib.nullcontext() as track:
            res = search_one(cfg, p, space, opts, cluster=cluster, storage=storage, warm_points=warm, track=track)
            write_pathology(res, out / p)
            results.append(res)
            write_summary(results, out, opts)
            if track:
                track.selection(res.summary, res.recommended, [out / p / "recommended.yaml", out / "summary.md"])
        if remote:  # s3:// or gs:// reports: written locally, then copied up after each pathology
            Storage(opts.reports).upload_dir(out, opts.run)
    return results
