"""Does the cross-modal chain do anything? One measured table per cohort, validation only:

- **ECG only, from scratch** — the ECG encoder + head trained supervised on the pathology;
- **ECG only, SSL init** — the same, starting from the SimCLR-pretrained ECG encoder;
- **CroMoTEX** — SSL init, aligned with the frozen image encoder (published AHNP defaults), fine-tuned;
- **image only** — the pretrained image classifier itself: the reference the ECG cannot see at inference.

Every row is validation AUROC/AUPRC with a bootstrap 95 % CI (:func:`xmodal.metrics.with_ci`).
All four share the cohort's stage cache, so image pretraining and ECG SSL run once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from xmodal.config import ExperimentConfig, apply_overrides
from xmodal.report.tables import fmt, table

ROWS = (("ECG only, from scratch", {"finetune.init": "scratch"}), ("ECG only, SSL init", {"finetune.init": "ssl"}),
        ("CroMoTEX (published defaults)", {"finetune.init": "align"}))


def compare(cfg: ExperimentConfig, pathologies: list[str], *, verbose: bool = True):
    """Per pathology, one row per model (validation metrics with CIs); yields the rows so far."""
    from xmodal.stages.chain import prepare, run_chain
    from xmodal.stages.evaluate import evaluate, evaluate_image_only
    from xmodal.stages.store import StageStore

    shards = prepare(cfg, verbose=verbose)
    store = StageStore(shards.storage)
    rows = []
    for p in pathologies:
        image_key = None
        for name, over in ROWS:
            c = apply_overrides(cfg, {"data.pathology": p, **over})
            res = run_chain(c, shards=shards, verbose=verbose)
            image_key = image_key or (res.stages["image_pretrain"].key if "image_pretrain" in res.stages else None)
            rows.append({"pathology": p, "model": name, **evaluate(c, shards, store, res.stages["finetune"].key, "val")})
        if image_key:
            c = apply_overrides(cfg, {"data.pathology": p})
            rows.append({"pathology": p, "model": "image only (reference)",
                         **evaluate_image_only(c, shards, store, image_key, "val")})
        yield pd.DataFrame(rows)


def write(df: pd.DataFrame, out: Path, *, command: str, cohort: str, seconds: float,
          cfg: ExperimentConfig | None = None) -> Path:
    """``baselines.md`` + ``baselines.json`` (+ ``config.yaml``, the base config); aggregate metrics only."""
    out.mkdir(parents=True, exist_ok=True)
    if cfg is not None:
        from xmodal.config import save_yaml
        from xmodal.report.render import portable

        save_yaml(portable(cfg), out / "config.yaml", comment="base config of the baselines table")
    body = [[r.pathology, r.model, f"{fmt(r.auroc)} [{fmt(r.auroc_lo)}, {fmt(r.auroc_hi)}]",
             f"{fmt(r.auprc)} [{fmt(r.auprc_lo)}, {fmt(r.auprc_hi)}]", int(r.n), fmt(r.prevalence, 2)]
            for r in df.itertuples()]
    md = "\n".join([
        "# Does alignment help? ECG-only vs CroMoTEX vs image-only (validation)", "",
        f"Cohort: {cohort}. Command: `{command}` ({seconds / 60:.0f} min). Base config: `config.yaml`.", "",
        "Validation AUROC/AUPRC with bootstrap 95 % CIs (1000 resamples). Model selection and every figure "
        "here use the validation split only; the test split is not read. The ECG rows use the ECG alone at "
        "inference; the image row is the pretrained image classifier, an upper reference.", "",
        table(["pathology", "model", "val AUROC [95 % CI]", "val AUPRC [95 % CI]", "n", "prevalence"], body), ""])
    (out / "baselines.md").write_text(md)
    (out / "baselines.json").write_text(json.dumps({"command": command, "cohort": cohort,
                                                    "seconds": round(seconds, 1),
                                                    "rows": df.to_dict(orient="records")}, indent=1, default=float))
    return out / "baselines.md"


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys
    from importlib import resources

    from xmodal.config import load_yaml
    from xmodal.errors import XmodalError
    from xmodal.runtime import ensure_ray
    from xmodal.stages.chain import demo_manifest

    ap = argparse.ArgumentParser(prog="searches/compare_baselines.py", description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=3000, help="size of the synthetic cohort")
    ap.add_argument("--data", default="", help="a real cohort manifest instead of the synthetic one")
    ap.add_argument("--config", default="", help="base config YAML (default: the demo preset)")
    ap.add_argument("--pathologies", nargs="+", default=["cardiomegaly", "pleural_effusion", "edema"])
    ap.add_argument("--out", default="reports/baselines")
    ap.add_argument("--num-cpus", type=int, default=4)
    args = ap.parse_args(argv)
    command = "python searches/compare_baselines.py " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        cfg = load_yaml(args.config or resources.files("xmodal") / "presets" / "demo.yaml")
        manifest = args.data or str(demo_manifest(cfg, subjects=args.subjects))
        cfg = apply_overrides(cfg, {"data.manifest": manifest})
        ensure_ray(args.num_cpus)
        t0 = time.time()
        cohort = f"{args.data}" if args.data else f"synthetic CXR cohort, {args.subjects} subjects (seed 0)"
        for df in compare(cfg, args.pathologies):  # the table is rewritten after each pathology
            path = write(df, Path(args.out), command=command.strip(), cohort=cohort, seconds=time.time() - t0,
                         cfg=cfg)
    except XmodalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path.read_text())
    return 0
