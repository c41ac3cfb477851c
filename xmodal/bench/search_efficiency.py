"""Section 4 — search efficiency: TPE + ASHA against random search with the same number of trials.

The trial is an in-process proxy of ``align``: a small ECG encoder and projection heads trained with
the real :func:`~xmodal.losses.ahnp.ahnp_supcon` against the cached image features of the warm chain,
reporting validation AUROC of a linear probe every epoch. A real trial (Ray Train stages) costs about
a minute here, too much for several seeds x two searchers x dozens of trials; the proxy keeps the
loss, the features, the space (:class:`xmodal.search.space.SearchSpace`) and the scheduler real.
"""

from __future__ import annotations


import numpy as np

from xmodal.bench.context import PATHOLOGY
from xmodal.bench.timing import summary

METRIC = "val_auroc"
DOWNSAMPLE = 4  # ECG 100 Hz -> 25 Hz for the proxy encoder
BATCH = 64


def load_arrays(feats, downsample: int = DOWNSAMPLE) -> dict:
    """Train/val ECGs (averaged over ``downsample`` samples), image features and labels from the feature
    Parquet (known labels only)."""
    import pyarrow.dataset as pads

    t = pads.dataset(feats.storage.path("features", feats.key, "data"), format="parquet",
                     filesystem=feats.storage.fs).to_table(columns=["split", "ecg", "img_feat", PATHOLOGY])
    y = t.column(PATHOLOGY).to_numpy(zero_copy_only=False).astype(np.float32)
    split = np.asarray(t.column("split").to_pylist())
    ecg = np.stack(t.column("ecg").to_numpy(zero_copy_only=False))
    if ecg.dtype == object:  # nested list columns come back as arrays of rows
        ecg = np.stack([np.stack(r) for r in ecg])
    ecg = ecg.astype(np.float32).reshape(len(ecg), 12, -1, downsample).mean(-1)  # tensor columns may be flat
    img = np.stack(t.column("img_feat").to_numpy(zero_copy_only=False)).astype(np.float32)
    keep = ~np.isnan(y)
    return {s: {"ecg": ecg[keep & (split == s)], "img": img[keep & (split == s)], "y": y[keep & (split == s)]}
            for s in ("train", "val")}


def proxy_trial(config: dict, data: dict, epochs: int) -> None:
    """Tune function: train on ``config``'s loss settings and ``align.lr``; report val AUROC each epoch."""
    import torch
    from ray import tune
    from torch import nn

    from xmodal.losses.ahnp import ahnp_supcon
    from xmodal.models.heads import ProjectionHead
    from xmodal.stages.align import probe

    torch.set_num_threads(1)
    torch.manual_seed(0)
    tr, va = data["train"], data["val"]
    enc = nn.Sequential(nn.Conv1d(12, 32, 7, stride=2, padding=3), nn.GELU(),
                        nn.Conv1d(32, 32, 7, stride=2, padding=3), nn.GELU(), nn.AdaptiveAvgPool1d(1), nn.Flatten())
    ecg_proj, img_proj = ProjectionHead(32, 64, 32), ProjectionHead(tr["img"].shape[1], 64, 32)
    params = [*enc.parameters(), *ecg_proj.parameters(), *img_proj.parameters()]
    opt = torch.optim.AdamW(params, lr=config["align.lr"], weight_decay=1e-4)
    hp = {"strategy": config["loss.strategy"], "k": config.get("loss.k", 0.075), "alpha": config.get("loss.alpha", 1.0),
          "beta": config["loss.beta"], "tau": config["loss.tau"]}
    x, f, y = (torch.from_numpy(tr[c]) for c in ("ecg", "img", "y"))
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        enc.train(), ecg_proj.train(), img_proj.train()
        order = torch.randperm(len(y), generator=g)
        for i in range(0, len(y) - 1, BATCH):
            idx = order[i:i + BATCH]
            if len(idx) < 2:
                continue
            loss = ahnp_supcon(ecg_proj(enc(x[idx])), img_proj(f[idx]), y[idx].long(), **hp)
            opt.zero_grad()
            loss.backward()
            opt.step()
        enc.eval()
        with torch.no_grad():
            tz, vz = enc(x).numpy(), enc(torch.from_numpy(va["ecg"])).numpy()
        auroc = probe(tz, tr["y"], vz, va["y"])["auroc"]
        tune.report({METRIC: auroc if np.isfinite(auroc) else 0.5})


def search(data, *, searcher: str, seed: int, samples: int, epochs: int, storage: str) -> list[dict]:
    """One Tuner; returns per trial (in creation order) its best AUROC and epochs run."""
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.optuna import OptunaSearch

    from xmodal.search.driver import DefineByRun
    from xmodal.search.space import SearchSpace

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = SearchSpace()
    sampler = (optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, samples // 3)) if searcher == "tpe_asha"
               else optuna.samplers.RandomSampler(seed=seed))
    alg = OptunaSearch(space=DefineByRun(space, "cromotex"), metric=METRIC, mode="max", sampler=sampler)
    sched = (ASHAScheduler(time_attr="training_iteration", max_t=epochs, grace_period=2, reduction_factor=2)
             if searcher == "tpe_asha" else FIFOScheduler())
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(proxy_trial, data=data, epochs=epochs), {"CPU": 1}),
        tune_config=tune.TuneConfig(metric=METRIC, mode="max", search_alg=alg, scheduler=sched,
                                    num_samples=samples, max_concurrent_trials=2),
        run_config=tune.RunConfig(name=f"{searcher}-{seed}", storage_path=storage, verbose=0))
    rows = []
    for r in tuner.fit():
        hist = r.metrics_dataframe
        rows.append({"trial_id": r.metrics["trial_id"], "best": float(hist[METRIC].max()), "epochs": len(hist)})
    return sorted(rows, key=lambda row: row["trial_id"])


def trials_to_reach(curve: list[float], target: float) -> int | None:
    """1-based number of trials after which the running best is >= ``target`` (None if never)."""
    return next((i + 1 for i, v in enumerate(curve) if v >= target - 1e-12), None)


def run(ctx) -> dict:
    feats = ctx.warm_chain().features
    data = load_arrays(feats)
    n, epochs, seeds = ctx.size["samples"], ctx.size["epochs"], ctx.size["seeds"]
    storage = str((ctx.work / "tune").resolve())
    curves, fractions, saved = {"tpe_asha": [], "random": []}, [], []
    per_seed = []
    for seed in range(seeds):
        res = {s: search(data, searcher=s, seed=seed, samples=n, epochs=epochs, storage=storage)
               for s in ("tpe_asha", "random")}
        run_best = {s: np.maximum.accumulate([r["best"] for r in rows]).tolist() for s, rows in res.items()}
        target = run_best["random"][-1]
        reach = trials_to_reach(run_best["tpe_asha"], target)
        fractions.append(reach / n if reach else (n + 1) / n)  # never reached: counted as > 1
        epochs_run = sum(r["epochs"] for r in res["tpe_asha"])
        saved.append(1 - epochs_run / (n * epochs))
        for s in curves:
            curves[s].append(run_best[s])
        per_seed.append({"seed": seed, "random_best": target, "tpe_asha_best": run_best["tpe_asha"][-1],
                         "tpe_asha_trials_to_random_best": reach, "epochs_run": epochs_run,
                         "epochs_max": n * epochs, "trials": res})
        ctx.log(f"search: seed {seed}: random best {target:.3f} in {n}; TPE+ASHA reached it after {reach}")
    return {"proxy": True, "samples": n, "epochs": epochs, "seeds": seeds, "train_rows": len(data["train"]["y"]),
            "val_rows": len(data["val"]["y"]), "fraction_to_random_best": summary(fractions),
            "epochs_saved_fraction": summary(saved), "curves": curves, "per_seed": per_seed,
            "unreached_seeds": sum(f > 1 for f in fractions)}
