"""Synthetic paired cohorts in the real formats and layouts (MIMIC-IV-ECG + MIMIC-CXR, UK Biobank).

    from xmodal.data.synthetic import ensure_demo_cohort
    manifest = ensure_demo_cohort(".cache/xmodal-demo/cxr-600-0", subjects=600, seed=0)      # cxr
    manifest = ensure_demo_cohort(".cache/xmodal-demo/cmr-600-0", subjects=600, kind="cmr")  # cine

    python -m xmodal.data.synthetic --out DIR --subjects 1000 --seed 0 [--kind cxr|cmr]

One latent cardiac state per subject and visit drives the labels, the image (clearly) and the
ECG (weakly): see :mod:`xmodal.data.synthetic.latent` and docs/synthetic.md.
"""

from xmodal.data.synthetic.generate import (GENERATOR_VERSION, build_manifest, ensure_demo_cohort,
                                            generate_cohort)
from xmodal.data.synthetic.latent import Knobs

__all__ = ["GENERATOR_VERSION", "Knobs", "build_manifest", "ensure_demo_cohort", "generate_cohort"]
