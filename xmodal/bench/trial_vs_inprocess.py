"""Section 7 — an xmodal search trial against the same trial written by hand in one process.

A researcher with one machine who considers xmodal would otherwise write an Optuna loop around their
own align + fine-tune code, in one process, with the shared stages trained once. Both sides here run
the same trial: the demo preset, the published defaults, ``align`` + ``finetune`` on the cached
``ecg_ssl`` encoder and image features of one chain (each trial a new ``align.seed``/``finetune.seed``,
so nothing is reused).

- **xmodal**: the real search driver (:func:`xmodal.search.driver.refit`: a Tune trial per seed, the
  stage store, checkpoints, Ray Data reads), one at a time, then two side by side. A trial's time is
  the Tuner's wall time over its trials (Tune's start-up included).
- **in process**: a plain ``optuna`` loop with no Ray: the feature rows read once with pyarrow, then per
  trial xmodal's ``AlignNet`` and loss, AdamW, a linear probe each align epoch, then ``ECGClassifier``
  from the aligned encoder with validation AUROC each epoch. Two side by side: two processes on one
  Optuna study (SQLite), as Optuna's docs run parallel workers.
"""

from __future__ import annotations

import multiprocessing
import time

from xmodal.bench.context import PATHOLOGY
from xmodal.bench.timing import summary


def load_rows(feats) -> dict:
    """Train/val ``ecg`` ``(N, 12, L)``, ``img_feat`` ``(N, D)`` and ``label`` ``(N,)`` with a known label."""
    import torch

    from xmodal.bench.search_efficiency import load_arrays

    return {s: {"ecg": torch.from_numpy(d["ecg"]), "img_feat": torch.from_numpy(d["img"]),
                "label": torch.from_numpy(d["y"])} for s, d in load_arrays(feats, downsample=1).items()}


def hand_written_trial(cfg, data: dict, ssl_state: dict, seed: int) -> float:
    """One align + finetune trial as a user would write it; returns the best validation AUROC."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from xmodal.losses.registry import build_loss
    from xmodal.stages.align import AlignNet
    from xmodal.stages.finetune import ECGClassifier, _augment

    torch.manual_seed(seed)
    train, val = data["train"], data["val"]
    n = len(train["label"])
    model = AlignNet(cfg, train["ecg"].shape[-1], {"img_feat": train["img_feat"].shape[-1]})
    model.encoder.load_state_dict(ssl_state)
    loss_fn, opt = build_loss(cfg.loss), torch.optim.AdamW(model.parameters(), lr=cfg.align.lr,
                                                           weight_decay=cfg.align.weight_decay)
    for _ in range(cfg.align.epochs):
        model.train()
        for idx in torch.randperm(n).split(cfg.align.batch_size):
            out = model({"ecg": train["ecg"][idx], "img_feat": train["img_feat"][idx], "label": train["label"][idx]})
            loss = sum(v for k, v in loss_fn(out).items() if k.endswith("_loss"))
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            tz, vz = model.embed(train["ecg"]).numpy(), model.embed(val["ecg"]).numpy()
        LogisticRegression(max_iter=300).fit(tz, train["label"].numpy()).decision_function(vz)
    clf = ECGClassifier(cfg, train["ecg"].shape[-1])
    clf.encoder.load_state_dict(model.encoder.state_dict())
    aug, opt = _augment(), torch.optim.AdamW(clf.parameters(), lr=cfg.finetune.lr,
                                            weight_decay=cfg.finetune.weight_decay)
    gen, best = torch.Generator().manual_seed(seed), 0.0
    for _ in range(cfg.finetune.epochs):
        clf.train()
        for idx in torch.randperm(n).split(cfg.finetune.batch_size):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                clf(aug(train["ecg"][idx], generator=gen)), train["label"][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        clf.eval()
        with torch.no_grad():
            best = max(best, roc_auc_score(val["label"].numpy(), clf(val["ecg"]).numpy()))
    return best


def _optuna_worker(cfg_dict: dict, data: dict, ssl_state: dict, n: int, offset: int, db: str, out) -> None:
    """Run ``n`` hand-written trials on the shared study; put their wall times on ``out``."""
    import optuna
    import torch

    from xmodal.config import from_dict

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = from_dict(cfg_dict)
    study = optuna.load_study(study_name="hand", storage=db)
    times = []

    def objective(trial):
        t0 = time.perf_counter()
        auc = hand_written_trial(cfg, data, ssl_state, seed=offset + trial.number)
        times.append(time.perf_counter() - t0)
        return auc

    study.optimize(objective, n_trials=n)
    out.put(times)


def hand_written(cfg, data: dict, ssl_state: dict, *, trials: int, processes: int, db: str) -> tuple[list[float], float]:
    """``trials`` hand-written trials over ``processes`` processes; (per-trial seconds, wall seconds)."""
    import optuna

    from xmodal.config import to_dict

    optuna.create_study(study_name="hand", storage=db, direction="maximize", load_if_exists=True)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    per = [trials // processes + (i < trials % processes) for i in range(processes)]
    t0 = time.perf_counter()
    procs = [ctx.Process(target=_optuna_worker, args=(to_dict(cfg), data, ssl_state, k, 1000 * i, db, out))
             for i, k in enumerate(per)]
    for p in procs:
        p.start()
    times = [t for _ in procs for t in out.get()]
    for p in procs:
        p.join()
    return times, time.perf_counter() - t0


def run(ctx) -> dict:
    from xmodal.config import apply_overrides
    from xmodal.methods import sized_config
    from xmodal.search.driver import SearchOptions, refit
    from xmodal.stages import ecg_ssl
    from xmodal.stages.chain import run_chain
    from xmodal.stages.store import StageStore

    n = 2 if ctx.quick else 8  # quick: the path at the smoke size, for the tests; its figures mean little
    storage = ctx.storage_dir("trial-vs-inprocess")
    cfg = apply_overrides(sized_config("smoke" if ctx.quick else "demo", "cromotex"), {
        "data.manifest": str(ctx.search_cohort()), "data.storage": str(storage), "data.pathology": PATHOLOGY})
    chain = run_chain(cfg, verbose=False)  # the shared stages, once (not timed)
    store = StageStore(chain.shards.storage)
    ssl_state = ecg_ssl.encoder_state(store, chain.stages["ecg_ssl"].key)
    data = load_rows(chain.features)

    def seeds(start: int) -> list[dict]:
        return [{"align.seed": s, "finetune.seed": s} for s in range(start, start + n)]

    out: dict = {"trials": n, "rows": {s: int(len(d["label"])) for s, d in data.items()}}
    for conc, start in ((1, 100), (2, 200)):
        opts = SearchOptions(run=f"tvi-{conc}", max_failures=0)
        t0 = time.perf_counter()
        frame = refit(seeds(start), cfg, opts, storage=str(storage / "tune"), tag="t", concurrency=conc)
        wall = time.perf_counter() - t0
        assert (frame["status"] == "completed").all(), frame["error"].tolist()
        out[f"xmodal_{conc}"] = {"wall_seconds": wall, "trial_seconds": wall / n * conc,
                                 "trials_per_hour": 3600 * n / wall}
        times, wall = hand_written(cfg, data, ssl_state, trials=n, processes=conc,
                                   db=f"sqlite:///{storage / f'hand-{conc}.db'}")
        out[f"inprocess_{conc}"] = {"trial_seconds": summary(times), "wall_seconds": wall,
                                    "trials_per_hour": 3600 * n / wall}
        ctx.log(f"trial_vs_inprocess: {conc} at a time: xmodal {out[f'xmodal_{conc}']['trials_per_hour']:.0f}/h, "
                f"in process {out[f'inprocess_{conc}']['trials_per_hour']:.0f}/h")
    out["ratio"] = out["xmodal_1"]["trial_seconds"] / out["inprocess_1"]["trial_seconds"]["median"]
    return out
