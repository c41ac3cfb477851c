"""``python -m xmodal.bench [--quick] [--out reports/benchmarks]``: run every section, write the report."""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

from xmodal.bench import SECTIONS


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m xmodal.bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="every section at a small size (about 4 minutes on 2 cores)")
    p.add_argument("--out", default="reports/benchmarks", help="folder for benchmarks.md/.json and plots")
    p.add_argument("--cache", default=".cache/xmodal-bench", help="where the synthetic cohorts are cached")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--num-cpus", type=int, default=6, help="logical CPUs of the local Ray")
    p.add_argument("--update", action="store_true",
                   help="run --sections only and keep the other sections' figures from --out's benchmarks.json "
                        "(each section records the command that measured it)")
    args = p.parse_args(argv)
    bad = sorted(set(args.sections.split(",")) - set(SECTIONS))
    if bad:
        p.error(f"unknown section(s) {', '.join(bad)}; choose from {', '.join(SECTIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from xmodal.bench import report
    from xmodal.bench.context import Context
    from xmodal.bench.machine import describe
    from xmodal.runtime import ensure_ray

    args = parse(argv)
    command = "python -m xmodal.bench " + " ".join(argv if argv is not None else sys.argv[1:])
    out = Path(args.out)
    cache = Path(args.cache).resolve()  # Tune trials run in folders of their own
    ctx = Context(quick=args.quick, cache=cache, work=cache / f"run-{os.getpid()}")
    ctx.machine = describe()
    ensure_ray(num_cpus=args.num_cpus)
    t0 = time.perf_counter()
    sections: dict = {}
    try:
        for name in [s for s in SECTIONS if s in args.sections.split(",")]:
            ctx.log(f"section {name} ...")
            t = time.perf_counter()
            try:
                sections[name] = importlib.import_module(f"xmodal.bench.{name}").run(ctx)
            except Exception as e:  # noqa: BLE001 — one failing section is reported, the others still run
                traceback.print_exc()
                sections[name] = {"reason": f"section failed: {type(e).__name__}: {e}"}
            sections[name]["section_seconds"] = round(time.perf_counter() - t, 1)
    finally:
        shutil.rmtree(ctx.work, ignore_errors=True)
    for sec in sections.values():
        sec["command"] = command
    if args.update and (out / "benchmarks.json").is_file():
        import json

        before = json.loads((out / "benchmarks.json").read_text())
        kept = {k: {"command": before.get("command", ""), **v} for k, v in before.get("sections", {}).items()
                if k not in sections}
        sections = {**kept, **sections}
    head = report.write(out, command=command, machine=ctx.machine, sections=sections,
                        seconds=time.perf_counter() - t0, quick=args.quick)
    ctx.log(f"wrote {out / 'benchmarks.md'}: " + ", ".join(f"{k}={v}" for k, v in head.items()
                                                            if k not in ("machine", "reasons")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
