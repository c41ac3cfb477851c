"""``python -m xmodal.data.synthetic --out DIR --subjects N --seed S [--kind cxr|cmr] [knobs...]``

Generates a synthetic paired cohort in the real formats (cached: an unchanged call is a no-op)
and prints the manifest builder's report. Errors a user can cause print one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from xmodal.errors import ConfigError, XmodalError


def _prevalence(text: str) -> tuple[str, float]:
    """``"edema=0.3"`` -> ``("edema", 0.3)``."""
    name, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LABEL=PREVALENCE (e.g. edema=0.3), got {text!r}") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m xmodal.data.synthetic", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="cohort folder (manifest.parquet is written inside)")
    p.add_argument("--subjects", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kind", choices=("cxr", "cmr"), default="cxr",
                   help="cxr: MIMIC-IV-ECG + MIMIC-CXR layout; cmr: UK-Biobank-like ECG + cine")
    p.add_argument("--workers", type=int, default=None, help="render processes (default: CPUs, at most 8)")
    p.add_argument("--force", action="store_true", help="regenerate even if the cached cohort matches")
    k = p.add_argument_group("knobs (xmodal.data.synthetic.Knobs; defaults there)")
    k.add_argument("--image-strength", type=float, help="scales every latent effect on the image")
    k.add_argument("--ecg-strength", type=float, help="scales every latent effect on the ECG")
    k.add_argument("--label-noise", type=float, help="fraction of labels flipped")
    k.add_argument("--uncertain-rate", type=float, help="CheXpert labels reported uncertain (-1)")
    k.add_argument("--blank-rate", type=float, help="CheXpert labels left blank")
    k.add_argument("--prevalence", type=_prevalence, action="append", metavar="LABEL=P",
                   help="prevalence of one label, e.g. --prevalence edema=0.3 (repeatable)")
    k.add_argument("--cxr-shape", type=int, nargs=2, metavar=("H", "W"), help="rows, columns of every CXR")
    k.add_argument("--cine-shape", type=int, nargs=2, metavar=("H", "W"), help="rows, columns of every cine frame")
    k.add_argument("--cine-frames", type=int, help="frames per cine")
    return p


def knobs_from_args(a: argparse.Namespace) -> dict[str, Any]:
    """The knobs given on the command line (the rest keep their Knobs defaults)."""
    names = ("image_strength", "ecg_strength", "label_noise", "uncertain_rate", "blank_rate", "cxr_shape",
             "cine_shape", "cine_frames")
    knobs = {n: getattr(a, n) for n in names if getattr(a, n) is not None}
    if a.prevalence:
        knobs["prevalence"] = dict(a.prevalence)
    return knobs


def _cached_summary(manifest: Path) -> str:
    from xmodal.data.manifest import BuildReport, describe, load_manifest

    df = load_manifest(manifest)
    report = BuildReport(manifest, steps=[("pairs", len(df))])
    report.splits, report.labels = describe(df)
    return f"[xmodal] cohort is up to date (--force regenerates)\n{report}"


def main(argv: Sequence[str] | None = None) -> int:
    a = parser().parse_args(argv)
    from xmodal.data.synthetic.generate import ensure_demo_cohort

    stamp = Path(a.out) / "cohort.json"
    before = stamp.stat().st_mtime_ns if stamp.is_file() else None
    try:
        if a.workers is not None and a.workers < 1:
            raise ConfigError(f"--workers {a.workers} must be >= 1")
        manifest = ensure_demo_cohort(a.out, subjects=a.subjects, seed=a.seed, kind=a.kind, workers=a.workers,
                                      force=a.force, verbose=True, **knobs_from_args(a))
        if stamp.is_file() and stamp.stat().st_mtime_ns == before:  # cache hit: nothing printed yet
            print(_cached_summary(manifest))
    except XmodalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
