"""Does the cross-modal chain do anything? One measured table per cohort, validation only:

- **ECG only, from scratch** — the ECG encoder + head trained supervised on the pathology;
- **ECG only, SSL init** — the same, starting from the SimCLR-pretrained ECG encoder;
- **CroMoTEX** — SSL init, aligned with the frozen image encoder (published AHNP defaults), fine-tuned;
- **CroMoTEX without ECG SSL** — the same with ``align.init = scratch``: the ECG encoder learns from the
  image (and the labels) alone, which isolates what the image teaches from what SSL does;
- **image only** — the pretrained image classifier itself: the reference the ECG cannot see at inference.

Each ECG row is trained with ``--seeds`` seeds (``align.seed``/``finetune.seed``); its validation
AUROC/AUPRC are those of the seeds' mean logit, with bootstrap 95 % CIs, next to the per-seed mean ± sd.
Each ECG row is also compared with both ECG-only rows on the same validation pairs: the AUROC difference
with a paired bootstrap CI (both models scored on each resample, so the sampling noise they share
cancels), which is the test of "alignment helps" that the separate CIs are too wide to give.
``--label-fraction`` trains with the labels of that fraction of the training subjects only
(``data.label_fraction``). All rows share the cohort's stage cache, so image pretraining and ECG SSL
run once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from xmodal.config import ExperimentConfig, apply_overrides
from xmodal.report.tables import fmt, table

ROWS = (("ECG only, from scratch", {"finetune.init": "scratch"}), ("ECG only, SSL init", {"finetune.init": "ssl"}),
        ("CroMoTEX (published defaults)", {"finetune.init": "align"}),
        ("CroMoTEX without ECG SSL", {"finetune.init": "align", "align.init": "scratch"}))
ROW_IDS = dict(zip(("scratch", "ssl", "cromotex", "cromotex_scratch"), ROWS))  # --rows picks by these
REFERENCES = {"scratch": "ECG only, from scratch", "ssl": "ECG only, SSL init"}  # compared with, pair by pair


def compare(cfg: ExperimentConfig, pathologies: list[str], *, seeds: int = 1, verbose: bool = True,
            models: tuple = ROWS):
    """Per pathology, one row per model of ``models`` (validation metrics with CIs); yields the rows so far."""
    from xmodal.metrics import paired_auroc_delta
    from xmodal.stages.chain import predict_many, prepare, run_chain
    from xmodal.stages.evaluate import evaluate_image_only
    from xmodal.stages.store import StageStore

    shards = prepare(cfg, verbose=verbose)
    store = StageStore(shards.storage)
    rows = []
    for p in pathologies:
        groups = {name: [apply_overrides(cfg, {"data.pathology": p, **over, "align.seed": s, "finetune.seed": s})
                         for s in range(seeds)] for name, over in models}
        image_key = None
        for members in groups.values():
            for c in members:
                res = run_chain(c, shards=shards, verbose=verbose)
                image_key = image_key or (res.stages["image_pretrain"].key if "image_pretrain" in res.stages
                                          else None)
        preds = predict_many(shards, store, groups, split="val")
        for name, _ in models:
            pr = preds[name]
            deltas = {f"{k}_{tag}": v for tag, ref in REFERENCES.items() if name != ref and ref in preds
                      for k, v in paired_auroc_delta(pr["labels"], pr["scores"], preds[ref]["scores"]).items()}
            rows.append({"pathology": p, "model": _shown(name, cfg), **pr["metrics"], **deltas})
        if image_key:
            c = apply_overrides(cfg, {"data.pathology": p})
            rows.append({"pathology": p, "model": "image only (reference)",
                         **evaluate_image_only(c, shards, store, image_key, "val")})
        yield pd.DataFrame(rows)


def _shown(name: str, cfg: ExperimentConfig) -> str:
    """The row's name, saying which loss settings CroMoTEX trained with when they are not the published ones."""
    from dataclasses import fields

    from xmodal.config import LossConfig

    changed = [f"{f.name}={getattr(cfg.loss, f.name)}" for f in fields(LossConfig)
               if getattr(cfg.loss, f.name) != f.default]
    return name.replace("published defaults", ", ".join(changed)) if changed and "published" in name else name


def _delta(r, tag: str) -> str:
    d = getattr(r, f"delta_{tag}", float("nan"))
    if d != d:  # NaN: the reference row itself, or the image row
        return "—" if r.model != REFERENCES[tag] else "(reference)"
    return f"{d:+.3f} [{getattr(r, f'delta_lo_{tag}'):+.3f}, {getattr(r, f'delta_hi_{tag}'):+.3f}]"


def _seeds(r) -> str:
    n = getattr(r, "n_seeds", float("nan"))
    return f"{r.seed_auroc_mean:.3f} ± {r.seed_auroc_sd:.3f}" if n == n and n > 1 else "—"


def write(df: pd.DataFrame, out: Path, *, command: str, cohort: str, seconds: float,
          cfg: ExperimentConfig | None = None, seeds: int = 1) -> Path:
    """``baselines.md`` + ``baselines.json`` (+ ``config.yaml``, the base config); aggregate metrics only."""
    out.mkdir(parents=True, exist_ok=True)
    if cfg is not None:
        from xmodal.config import save_yaml
        from xmodal.report.render import portable

        save_yaml(portable(cfg), out / "config.yaml", comment="base config of the baselines table")
    frac = cfg.data.label_fraction if cfg is not None else 1.0
    labels = ("every training label" if frac >= 1 else
              f"the labels of {frac:.0%} of the training subjects (`data.label_fraction={frac}`); CroMoTEX "
              "aligns on every training pair, an unlabelled pair being a class of its own")
    body = [[r.pathology, r.model, f"{fmt(r.auroc)} [{fmt(r.auroc_lo)}, {fmt(r.auroc_hi)}]", _seeds(r),
             _delta(r, "scratch"), _delta(r, "ssl"),
             f"{fmt(r.auprc)} [{fmt(r.auprc_lo)}, {fmt(r.auprc_hi)}]", int(r.n), fmt(r.prevalence, 2)]
            for r in df.itertuples()]
    md = "\n".join([
        "# Does alignment help? ECG-only vs CroMoTEX vs image-only (validation)", "",
        f"Cohort: {cohort}. Command: `{command}` ({seconds / 60:.0f} min). Base config: `config.yaml`. "
        f"Training used {labels}.", "",
        f"Validation AUROC/AUPRC with bootstrap 95 % CIs (1000 resamples) of each ECG row's {seeds}-seed mean "
        "logit, the per-seed AUROC mean ± sd, and ΔAUROC against each ECG-only row (*from scratch*: the supervised "
        "baseline; *SSL init*: the same encoder pretraining CroMoTEX starts from) on the same pairs, with paired "
        "bootstrap 95 % CIs. Model selection and every figure here use the validation split only; the "
        "test split is not read. The ECG rows use the ECG alone at inference; the image row is the pretrained "
        "image classifier, an upper reference.", "",
        table(["pathology", "model", "val AUROC [95 % CI]", "per-seed AUROC", "ΔAUROC vs scratch [95 % CI]",
               "ΔAUROC vs SSL init [95 % CI]",
               "val AUPRC [95 % CI]", "n", "prevalence"], body), ""])
    (out / "baselines.md").write_text(md)
    (out / "baselines.json").write_text(json.dumps({"command": command, "cohort": cohort, "seeds": seeds,
                                                    "label_fraction": frac, "seconds": round(seconds, 1),
                                                    "rows": df.to_dict(orient="records")}, indent=1, default=float))
    return out / "baselines.md"


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from xmodal.config import load_yaml, parse_override
    from xmodal.errors import XmodalError
    from xmodal.methods import sized_config
    from xmodal.runtime import ensure_ray
    from xmodal.stages.chain import demo_manifest

    ap = argparse.ArgumentParser(prog="searches/compare_baselines.py", description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=3000, help="size of the synthetic cohort")
    ap.add_argument("--data", default="", help="a real cohort manifest instead of the synthetic one")
    ap.add_argument("--config", default="", help="base config YAML (default: the demo preset)")
    ap.add_argument("--pathologies", nargs="+", default=["cardiomegaly", "pleural_effusion", "edema"])
    ap.add_argument("--out", default="reports/baselines")
    ap.add_argument("--num-cpus", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=3, help="training seeds per ECG row")
    ap.add_argument("--rows", nargs="+", choices=list(ROW_IDS), default=list(ROW_IDS), help="the ECG rows to train")
    ap.add_argument("--label-fraction", type=float, default=1.0,
                    help="fraction of training subjects whose labels are used (data.label_fraction)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="dotted-key override of the base config, e.g. model.image_weights=encoder.pt (repeatable)")
    args = ap.parse_args(argv)
    command = "python searches/compare_baselines.py " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        cfg = load_yaml(args.config) if args.config else sized_config("demo", "cromotex")
        cfg = apply_overrides(cfg, dict(parse_override(s) for s in args.set))
        manifest = args.data or str(demo_manifest("cxr", subjects=args.subjects, storage=cfg.data.storage))
        cfg = apply_overrides(cfg, {"data.manifest": manifest, "data.label_fraction": args.label_fraction})
        ensure_ray(args.num_cpus)
        t0 = time.time()
        cohort = f"{args.data}" if args.data else f"synthetic CXR cohort, {args.subjects} subjects (seed 0)"
        models = tuple(ROW_IDS[r] for r in args.rows)
        for df in compare(cfg, args.pathologies, seeds=args.seeds, models=models):  # rewritten after each pathology
            path = write(df, Path(args.out), command=command.strip(), cohort=cohort, seconds=time.time() - t0,
                         cfg=cfg, seeds=args.seeds)
    except XmodalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path.read_text())
    return 0
