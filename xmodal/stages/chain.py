"""The chain every trial runs: preprocess -> image_pretrain -> ecg_ssl -> features -> align -> finetune.

Each step is reused from the cache when its key exists, so a search over loss settings pays for
``image_pretrain``, ``ecg_ssl`` and the image features once and runs only ``align`` + ``finetune``
per trial, both in one Ray Train run (:mod:`xmodal.stages.align_finetune`). Validation only, unless ``evaluate_test`` asks for the explicit final test evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from xmodal.config import ExperimentConfig
from xmodal.data.pipeline import ShardSet, preprocess
from xmodal.errors import ConfigError, SearchError
from xmodal.stages import align_finetune, ecg_ssl, evaluate, features, finetune, image_pretrain
from xmodal.stages.features import FeatureSet
from xmodal.stages.store import StageOutput, StageStore
from xmodal.storage import Storage

METHOD_LOSS = {"cromotex": "ahnp_supcon", "eccl": "clip_task", "ptacl": "ptacl", "dual_phase": "multi_phase_clip"}
METHOD_IMAGE_KIND = {"cromotex": "cxr", "eccl": "cine", "ptacl": "cine", "dual_phase": "cine"}
DEMO_ROOT = Path(".cache") / "xmodal-demo"


@dataclass
class ChainResult:
    shards: ShardSet
    stages: dict[str, StageOutput]
    features: FeatureSet | None
    val: dict[str, float]
    test: dict[str, float] | None = None
    reused: dict[str, bool] = field(default_factory=dict)


def demo_manifest(cfg: ExperimentConfig, subjects: int = 600, seed: int = 0) -> Path:
    """The synthetic demo cohort for this method, generated once and cached next to a local stage
    storage (``<storage>/../xmodal-demo``; ``.cache/xmodal-demo`` with the default storage)."""
    from xmodal.data.synthetic import ensure_demo_cohort

    kind = "cxr" if METHOD_IMAGE_KIND[cfg.method] == "cxr" else "cmr"
    st = cfg.data.storage
    root = Path(st).parent / DEMO_ROOT.name if st and "://" not in st else DEMO_ROOT
    return ensure_demo_cohort(root / f"{kind}-{subjects}-{seed}", subjects=subjects, seed=seed, kind=kind)


def load_cohort(cfg: ExperimentConfig) -> pd.DataFrame:
    """The manifest named by ``cfg.data.manifest`` (or the demo cohort), validated for this run."""
    from xmodal.data.manifest import label_columns, load_manifest

    path = cfg.data.manifest or str(demo_manifest(cfg))
    df = load_manifest(path)
    labels = label_columns(df)
    if cfg.data.pathology not in labels:
        raise SearchError(f"{path}: no label column {cfg.data.pathology!r}; the manifest has {', '.join(labels)}")
    kind = df["image_kind"].iloc[0] if len(df) else "?"
    if kind != METHOD_IMAGE_KIND[cfg.method]:
        raise ConfigError(f"method {cfg.method!r} needs a {METHOD_IMAGE_KIND[cfg.method]} cohort; {path} holds {kind}")
    return df


def check_method(cfg: ExperimentConfig) -> None:
    if cfg.loss.name != METHOD_LOSS[cfg.method]:
        raise ConfigError(f"method {cfg.method!r} trains with loss.name={METHOD_LOSS[cfg.method]!r}, "
                          f"not {cfg.loss.name!r}")


def prepare(cfg: ExperimentConfig, *, verbose: bool = True) -> ShardSet:
    check_method(cfg)
    df = load_cohort(cfg)
    return preprocess(df, cfg.ecg, cfg.image, Storage(cfg.data.storage), shard_rows=cfg.data.shard_rows,
                      verbose=verbose)


def check_splits(shards: ShardSet, pathology: str) -> None:
    """Refuse before training: an empty split or a validation label with one class."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    from xmodal.data.manifest import label_split_problem

    st = shards.storage
    ds = pads.dataset(st.path("shards", shards.key, "data"), format="parquet", filesystem=st.fs)
    t = ds.to_table(columns=["split", pathology], filter=pc.field("ok") & (pc.field("split") != "test")).to_pandas()
    problem = label_split_problem(t["split"], t[pathology], pathology)
    if problem:
        raise SearchError(f"{problem} (after dropping bad records)")


def run_chain(cfg: ExperimentConfig, *, evaluate_test: bool = False, callbacks: list | None = None,
              shards: ShardSet | None = None, verbose: bool = True) -> ChainResult:
    """Run (or reuse) every stage for ``cfg.data.pathology``; ``callbacks`` go to align/finetune runs."""
    shards = shards or prepare(cfg, verbose=verbose)
    check_splits(shards, cfg.data.pathology)
    store = StageStore(shards.storage)
    kw = {"verbose": verbose}
    stages: dict[str, StageOutput] = {}
    feats = None
    if cfg.finetune.init == "align":
        stages["image_pretrain"] = image_pretrain.run(cfg, shards, store, **kw)
    if cfg.finetune.init in ("align", "ssl"):
        stages["ecg_ssl"] = ecg_ssl.run(cfg, shards, store, **kw)
    if cfg.finetune.init == "align":
        feats = features.run(cfg, shards, stages["image_pretrain"].key, verbose=verbose)
        stages["align"], stages["finetune"] = align_finetune.run(cfg, shards, feats, stages["ecg_ssl"], store,
                                                                 callbacks=callbacks, **kw)
    else:
        stages["finetune"] = finetune.run(cfg, shards, stages.get("ecg_ssl"), store, callbacks=callbacks, **kw)
    ft = stages["finetune"]
    val = {k: v for k, v in ft.metrics.get("best", {}).items() if k.startswith("val_")}
    test = evaluate.evaluate(cfg, shards, store, ft.key, "test") if evaluate_test else None
    reused = {"preprocess": shards.reused, **{k: v.reused for k, v in stages.items()}}
    if feats is not None:
        reused["features"] = feats.reused
    return ChainResult(shards, stages, feats, val, test, reused)
