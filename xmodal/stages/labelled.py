"""Which training rows may use their labels: all of them, or the pairs of a seeded subset of subjects.

``data.label_fraction < 1`` models the common clinical case of many image-ECG pairs and few labels:
a fraction of the *training subjects* (chosen by ``seed``, the same subset for every stage and every
pathology) keep their labels, the rest are unlabelled. Fine-tuning trains on the labelled pairs only, and
so does image pretraining unless ``data.image_labels = "all"`` (the image encoder's own labelled set);
``align`` trains on every pair, an unlabelled pair being a class of its own (its only positive is its own
image, as in CLIP). Validation and test keep every label, so model
selection and evaluation are unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from xmodal.config import ExperimentConfig

_SUBSET_SEED = 7_919  # the subset depends on the experiment seed only, not on any stage's seed


def labelled_pairs(cfg: ExperimentConfig) -> list[str] | None:
    """``pair_id`` of the training pairs whose subjects keep their labels; None when every label is used."""
    if cfg.data.label_fraction >= 1.0:
        return None
    from xmodal.stages.chain import load_cohort

    return choose_pairs(load_cohort(cfg), cfg.data.label_fraction, cfg.seed)


def choose_pairs(manifest: pd.DataFrame, fraction: float, seed: int) -> list[str]:
    """The training pairs of ``ceil(fraction * n)`` training subjects drawn with ``seed`` (at least one)."""
    train = manifest.loc[manifest["split"] == "train", ["pair_id", "subject_id"]].astype(str)
    subjects = np.sort(train["subject_id"].unique())
    rng = np.random.default_rng(seed * 1_000_003 + _SUBSET_SEED)
    keep = rng.permutation(subjects)[: max(1, math.ceil(fraction * len(subjects)))]
    return sorted(train.loc[train["subject_id"].isin(keep), "pair_id"])


def image_pairs(cfg: ExperimentConfig) -> list[str] | None:
    """The training pairs image pretraining may use the labels of (``data.image_labels``)."""
    return None if cfg.data.image_labels == "all" else labelled_pairs(cfg)


def image_key_part(cfg: ExperimentConfig) -> dict:
    """What image pretraining's labels depend on (see :func:`key_part`)."""
    return {} if cfg.data.image_labels == "all" else key_part(cfg)


def labelled_filter(pairs: list[str] | None, split: str) -> "pc.Expression | None":
    """Filter expression keeping the labelled rows of ``split`` (None: no filter)."""
    if pairs is None or split != "train":
        return None
    return pc.field("pair_id").isin(pairs)


def key_part(cfg: ExperimentConfig) -> dict:
    """What a stage trained on labels depends on (empty with every label: keys stay as they were)."""
    if cfg.data.label_fraction >= 1.0:
        return {}
    return {"label_fraction": cfg.data.label_fraction, "label_subset_seed": cfg.seed}


def hide_labels(batch: dict[str, np.ndarray], pairs: list[str]) -> dict[str, np.ndarray]:
    """Ray Data UDF (numpy batches): ``label`` becomes NaN on rows whose ``pair_id`` is not in ``pairs``;
    ``pair_id`` is dropped."""
    ids = batch.pop("pair_id").astype(str)
    label = batch["label"].astype(np.float32)
    batch["label"] = np.where(np.isin(ids, np.asarray(pairs, dtype=str)), label, np.float32("nan"))
    return batch
