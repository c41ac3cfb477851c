"""Generate a synthetic cohort (in parallel, deterministically) and cache it with its manifest.

    manifest = ensure_demo_cohort(".cache/xmodal-demo/cxr-600-0", subjects=600, seed=0)

``ensure_demo_cohort`` regenerates only when the parameters in ``<root>/cohort.json`` differ.
That file is written last, atomically, after the data and the manifest: a generation that was
interrupted leaves no ``cohort.json`` and is redone on the next call. A file lock serialises
concurrent callers on one machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import multiprocessing
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Iterator

from xmodal.data.synthetic import cohort, ukbb
from xmodal.data.synthetic.latent import Knobs
from xmodal.errors import ConfigError

GENERATOR_VERSION = 5  # bump when a change alters the generated files
KINDS = ("cxr", "cmr")
DATA_DIRS = {"cxr": (cohort.ECG_DIR, cohort.CXR_DIR), "cmr": (ukbb.UKBB_DIR,)}
MANIFEST = "manifest.parquet"
CHUNK = 8  # subjects per task


def _render_chunk(kind: str, plans: list, root: str, seed: int, knobs: Knobs) -> int:
    render = cohort.render_cxr_subject if kind == "cxr" else ukbb.render_cmr_subject
    for p in plans:
        render(p, Path(root), seed, knobs)
    return len(plans)


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _can_spawn() -> bool:
    """Spawned workers re-import ``__main__`` from its file; a script read from stdin has none."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    return path is None or os.path.isfile(path)


def generate_cohort(out: str | Path, *, subjects: int, seed: int = 0, kind: str = "cxr", knobs: Knobs | None = None,
                    workers: int | None = None) -> dict[str, Any]:
    """Write the cohort's files and tables under ``out``; returns counts and timing.

    The files depend only on ``(subjects, seed, kind, knobs)``, never on ``workers``. Workers
    are spawned (not forked), so this is safe to call from a process that runs Ray.
    """
    if kind not in KINDS:
        raise ConfigError(f"kind={kind!r} is not one of {', '.join(KINDS)}")
    if subjects < 1:
        raise ConfigError(f"subjects={subjects} must be >= 1")
    knobs = (knobs or Knobs()).validated()
    out = Path(out)
    t0 = time.perf_counter()
    plans = cohort.plan_cxr(subjects, seed, knobs) if kind == "cxr" else ukbb.plan_cmr(subjects, seed, knobs)
    counts = cohort.write_cxr_tables(plans, out, knobs) if kind == "cxr" else ukbb.write_cmr_table(plans, out)
    chunks = [plans[i:i + CHUNK] for i in range(0, len(plans), CHUNK)]
    workers = min(workers or default_workers(), len(chunks)) if _can_spawn() else 1
    if workers <= 1:
        for c in chunks:
            _render_chunk(kind, c, str(out), seed, knobs)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            for f in [pool.submit(_render_chunk, kind, c, str(out), seed, knobs) for c in chunks]:
                f.result()
    seconds = time.perf_counter() - t0
    return {**counts, "seconds": round(seconds, 2), "subjects_per_second": round(subjects / seconds, 2),
            "workers": workers}


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cohort_params(*, subjects: int, seed: int, kind: str, knobs: Knobs) -> dict[str, Any]:
    """What the cached cohort depends on (compared with ``cohort.json``)."""
    return {"generator_version": GENERATOR_VERSION, "kind": kind, "subjects": int(subjects), "seed": int(seed),
            "knobs": knobs.to_dict()}


def build_manifest(root: Path, kind: str, *, split_seed: int = 0):
    """The manifest of a generated cohort at ``root/manifest.parquet`` (MIMIC or CSV builder)."""
    if kind == "cxr":
        from xmodal.data.mimic import build_mimic_manifest

        return build_mimic_manifest(root / cohort.ECG_DIR, root / cohort.CXR_DIR, root / MANIFEST,
                                    split_seed=split_seed)
    from xmodal.data.csv_cohort import build_csv_manifest

    return build_csv_manifest(root / ukbb.UKBB_DIR / ukbb.PAIRS_CSV, root / MANIFEST, image_kind="cine",
                              label_columns=list(ukbb.CMR_LABELS), split_seed=split_seed,
                              column_map={"subject_id": "eid", "image_path": "cmr_path", "image_time": "cmr_time"})


def ensure_demo_cohort(root: str | Path, *, subjects: int = 600, seed: int = 0, kind: str = "cxr",
                       workers: int | None = None, force: bool = False, verbose: bool = True,
                       **knobs: Any) -> Path:
    """Generate the cohort into ``root`` once (cached by its parameters); returns the manifest path.

    ``knobs`` are :class:`~xmodal.data.synthetic.latent.Knobs` fields (``image_strength=0.5``,
    ``cxr_shape=(3000, 2500)``, ``prevalence={"edema": 0.3}``...). Unknown knobs raise ConfigError.
    """
    root = Path(root)
    if kind not in KINDS:  # checked before the folder is touched
        raise ConfigError(f"kind={kind!r} is not one of {', '.join(KINDS)}")
    if subjects < 1:
        raise ConfigError(f"subjects={subjects} must be >= 1")
    k = Knobs.from_dict(knobs)
    params = cohort_params(subjects=subjects, seed=seed, kind=kind, knobs=k)
    stamp, manifest = root / "cohort.json", root / MANIFEST
    with _locked(root):
        if not force and stamp.is_file() and manifest.is_file():
            try:
                if json.loads(stamp.read_text()).get("params") == params:
                    return manifest
            except json.JSONDecodeError:
                pass
        stamp.unlink(missing_ok=True)  # from here on, the folder is not a finished cohort
        partial = root / ".partial"
        for name in (".partial", MANIFEST, *DATA_DIRS["cxr"], *DATA_DIRS["cmr"]):
            p = root / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        if verbose:
            print(f"[xmodal] generating a synthetic {kind} cohort of {subjects} subjects in {root} ...", flush=True)
        stats = generate_cohort(partial, subjects=subjects, seed=seed, kind=kind, knobs=k, workers=workers)
        for name in DATA_DIRS[kind]:
            os.replace(partial / name, root / name)
        partial.rmdir()
        report = build_manifest(root, kind)
        if verbose:
            print(f"[xmodal] {stats['subjects']} subjects in {stats['seconds']} s "
                  f"({stats['subjects_per_second']} subjects/s, {stats['workers']} workers)\n{report}", flush=True)
        tmp = root / f".cohort.json.{os.getpid()}"
        tmp.write_text(json.dumps({"params": params, "stats": stats, "pairs": report.pairs}, indent=2) + "\n")
        os.replace(tmp, stamp)
    return manifest
