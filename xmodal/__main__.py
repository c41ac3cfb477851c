"""``python -m xmodal train --config CONFIG.yaml [--set key=value ...] [--evaluate-test]``

Runs the whole chain for one pathology (reusing cached stages) and prints validation — and, only
with ``--evaluate-test``, test — AUROC/AUPRC with bootstrap 95 % CIs. ``CONFIG.yaml`` is the format
the search writes as ``recommended.yaml``, so a recommended config trains as it stands.

``python -m xmodal export-image-encoder --config CONFIG.yaml --out encoder.pt [--set ...]`` runs (or
reuses) the cohort's ``image_pretrain`` stage and writes its encoder as a weights file, which another
cohort's chain starts from with ``model.image_weights=encoder.pt`` — e.g. an encoder pretrained on
every chest X-ray of MIMIC-CXR, most of which have no paired ECG.
"""

from __future__ import annotations

import argparse
import sys

from xmodal.errors import XmodalError


def _fmt(m: dict, name: str) -> str:
    lo, hi = m.get(f"{name}_lo"), m.get(f"{name}_hi")
    ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else ""
    return f"{name.upper()} {m[name]:.3f}{ci}"


def _config(args: argparse.Namespace):
    """``--config`` (defaults when omitted) with ``--set`` applied; starts local Ray with ``--num-cpus``."""
    from xmodal.config import ExperimentConfig, apply_overrides, load_yaml, parse_override
    from xmodal.runtime import ensure_ray

    cfg = load_yaml(args.config) if args.config else ExperimentConfig()
    cfg = apply_overrides(cfg, dict(parse_override(s) for s in args.set))
    ensure_ray(args.num_cpus)
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    from xmodal.stages import evaluate
    from xmodal.stages.chain import run_chain
    from xmodal.stages.store import StageStore

    cfg = _config(args)
    res = run_chain(cfg, evaluate_test=args.evaluate_test)
    val = evaluate.evaluate(cfg, res.shards, StageStore(res.shards.storage), res.stages["finetune"].key, "val")
    print(f"\n{cfg.method} / {cfg.data.pathology} (ECG only at inference)")
    print(f"  validation: {_fmt(val, 'auroc')}  {_fmt(val, 'auprc')}  (n={val['n']})")
    if res.test is not None:
        print(f"  test:       {_fmt(res.test, 'auroc')}  {_fmt(res.test, 'auprc')}  (n={res.test['n']})")
    else:
        print("  test:       not evaluated (pass --evaluate-test for the one final evaluation)")
    return 0


def cmd_export_image_encoder(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from xmodal.stages import image_pretrain
    from xmodal.stages.chain import prepare
    from xmodal.stages.store import StageStore

    cfg = _config(args)
    shards = prepare(cfg)
    store = StageStore(shards.storage)
    out = image_pretrain.run(cfg, shards, store)
    state = image_pretrain.encoder_state(store, out.key)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    best = out.metrics.get("best", {})
    scores = ", ".join(f"{k[len('val_auroc_'):]} {v:.3f}" for k, v in best.items() if k.startswith("val_auroc_"))
    print(f"wrote {path} ({cfg.model.image_encoder}, {len(state)} tensors); validation AUROC: {scores}")
    print(f"use it with: --set model.image_weights={path}")
    return 0


def _config_args(p: argparse.ArgumentParser, config_help: str) -> None:
    """The arguments :func:`_config` reads."""
    p.add_argument("--config", help=config_help)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted-key override, e.g. --set loss.tau=0.05 (repeatable)")
    p.add_argument("--num-cpus", type=int, default=None, help="logical CPUs for a local Ray (default: all)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m xmodal", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="run the stage chain for one pathology")
    _config_args(t, "YAML config (e.g. a recommended.yaml); defaults when omitted")
    t.add_argument("--evaluate-test", action="store_true", help="run the one explicit final test evaluation")
    e = sub.add_parser("export-image-encoder", help="pretrain (or reuse) the image encoder and write its weights")
    _config_args(e, "YAML config naming the image cohort (data.manifest) and encoder")
    e.add_argument("--out", required=True, help="weights file to write (.pt), loadable as model.image_weights")
    args = p.parse_args(argv)
    try:
        return {"train": cmd_train, "export-image-encoder": cmd_export_image_encoder}[args.command](args)
    except XmodalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
