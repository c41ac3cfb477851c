"""What the sections share: sizes (quick or full), the cached cohorts and the warm stage cache.

Two synthetic cohorts, cached under ``--cache`` by their parameters (generated once per machine):

- ``raw``: MIMIC-sized CXRs (3000 x 2500, 16-bit DICOM) + 500 Hz WFDB ECGs, for reading raw files;
- ``search``: many subjects with small CXRs, for the chain, its shards and the search proxy.

The warm storage holds one finished chain (shards, stages, image features); sections that need
it call :meth:`Context.warm_chain`, which runs the chain on first use and times that run.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PATHOLOGY = "cardiomegaly"
RAW_SHAPE = (3000, 2500)  # MIMIC-CXR's typical size (rows, columns)
SEARCH_SHAPE = (256, 224)

SIZES = {
    "quick": {"raw_subjects": 3, "search_subjects": 120, "naive_reps": 1, "stream_reps": 2, "preprocess_reps": 1,
              "naive_trials": 1, "xmodal_trials": 1, "seeds": 1, "samples": 4, "epochs": 4, "trial_image": {}},
    "full": {"raw_subjects": 16, "search_subjects": 600, "naive_reps": 2, "stream_reps": 3, "preprocess_reps": 2,
             "naive_trials": 2, "xmodal_trials": 3, "seeds": 3, "samples": 20, "epochs": 10,
             # Trial cost: the image side at its published size (DenseNet-121 at 224 px), one epoch of image
             # pretraining (published: 10), so the naive trial's image work is counted, conservatively.
             "trial_image": {"model.image_encoder": "densenet121", "image.size": 224, "image_pretrain.epochs": 1,
                             "image_pretrain.batch_size": 32}},
}


@dataclass
class Context:
    quick: bool
    cache: Path
    work: Path
    verbose: bool = True
    chain_runs: list = field(default_factory=list)  # seconds of the warm chain (run on fresh storage)
    _warm: object = None

    @property
    def size(self) -> dict:
        return SIZES["quick" if self.quick else "full"]

    def log(self, msg: str) -> None:
        if self.verbose:
            print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def raw_cohort(self) -> Path:
        from xmodal.data.synthetic import ensure_demo_cohort

        n = self.size["raw_subjects"]
        return ensure_demo_cohort(self.cache / f"raw-{n}", subjects=n, seed=0, kind="cxr", cxr_shape=RAW_SHAPE,
                                  verbose=False)

    def search_cohort(self) -> Path:
        from xmodal.data.synthetic import ensure_demo_cohort

        n = self.size["search_subjects"]
        return ensure_demo_cohort(self.cache / f"search-{n}", subjects=n, seed=0, kind="cxr",
                                  cxr_shape=SEARCH_SHAPE, verbose=False)

    def storage_dir(self, name: str) -> Path:
        """A fresh (emptied) storage folder under the run's work folder."""
        p = self.work / name
        shutil.rmtree(p, ignore_errors=True)
        return p

    def chain_config(self, storage: Path, overrides: dict | None = None):
        """The smoke preset on the search cohort: every stage, small models (``overrides`` on top)."""
        from xmodal.config import apply_overrides
        from xmodal.methods import sized_config

        cfg = sized_config("smoke", "cromotex")
        return apply_overrides(cfg, {"data.manifest": str(self.search_cohort()), "data.storage": str(storage),
                                     "data.pathology": PATHOLOGY, **(overrides or {})})

    def adopt_warm(self, result, seconds: float) -> None:
        """A chain another section ran with :meth:`chain_config`'s own settings on fresh storage serves
        as the warm one (quick runs: the trial section's first naive trial), rather than a second run."""
        if self._warm is None:
            self._warm = result
            self.chain_runs.append(seconds)

    def warm_chain(self):
        """The chain on the warm storage (run, and timed, on first use)."""
        from xmodal.stages.chain import run_chain

        if self._warm is None:
            cfg = self.chain_config(self.storage_dir("warm"))
            t0 = time.perf_counter()
            self._warm = run_chain(cfg, verbose=False)
            self.chain_runs.append(time.perf_counter() - t0)
        return self._warm
