"""The chain every trial runs: preprocess -> image_pretrain -> ecg_ssl -> features -> align -> finetune.

Each step is reused from the cache when its key exists, so a search over loss settings pays for
``image_pretrain``, ``ecg_ssl`` and the image features once and runs only ``align`` + ``finetune``
per trial, both in one Ray Train run (:mod:`xmodal.stages.align_finetune`). Validation only, unless ``evaluate_test`` asks for the explicit final test evaluation.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from xmodal.config import ExperimentConfig
from xmodal.data.pipeline import ShardSet, preprocess
from xmodal.errors import ConfigError, SearchError
from xmodal.methods import method
from xmodal.stages import (align_finetune, ecg_ssl, evaluate, features, finetune, image_pretrain,
                           image_pretrain_ecg_ssl)
from xmodal.stages.features import FeatureSet
from xmodal.stages.labelled import labelled_pairs
from xmodal.stages.store import StageOutput, StageStore
from xmodal.storage import Storage

DEFAULT_STORAGE = ".cache/xmodal"
DEMO_ROOT = Path(".cache") / "xmodal-demo"
# The embedded defaults' cohorts (on 2 cores: CXR demo about 59 min, CMR 23) and how they are drawn:
# CMR cines at 64 px x 25 frames (UK Biobank: 208 x 210 x 50), enough for the demo's 48 px x 16 frames.
DEMO_SUBJECTS = {"cxr": 2000, "cine": 600}
DEMO_KNOBS: dict[str, dict] = {"cxr": {}, "cine": {"cine_shape": (64, 64), "cine_frames": 25}}
# The regime the CXR demo runs in (docs/synthetic.md, "Where transfer shows"): many pairs, 5 % of ECG
# labels, an image encoder pretrained on every film's label, alignment at 5 epochs of lr 1e-3 (as good as 10
# at 5e-4), and a head trained on the frozen encoder (full fine-tuning on ~100 labels forgets the alignment).
DEMO_REGIME: dict[str, dict] = {
    "cxr": {"data.label_fraction": 0.05, "data.image_labels": "all", "align.epochs": 5, "align.lr": 0.001,
            "finetune.freeze_encoder": True, "finetune.lr": 0.01, "finetune.epochs": 30, "finetune.patience": 10},
    "cine": {},
}


@dataclass
class ChainResult:
    shards: ShardSet
    stages: dict[str, StageOutput]
    features: FeatureSet | None
    val: dict[str, float]
    test: dict[str, float] | None = None
    reused: dict[str, bool] = field(default_factory=dict)


def demo_manifest(image_kind: str = "cxr", subjects: int | None = None, seed: int = 0,
                  storage: str = DEFAULT_STORAGE) -> Path:
    """The synthetic demo cohort of ``image_kind`` (``cxr`` or ``cine``), generated once and cached next to
    a local stage storage (``<storage>/../xmodal-demo``; ``.cache/xmodal-demo`` otherwise)."""
    from xmodal.data.synthetic import ensure_demo_cohort

    subjects = subjects or DEMO_SUBJECTS[image_kind]
    kind = "cxr" if image_kind == "cxr" else "cmr"
    root = Path(storage).parent / DEMO_ROOT.name if storage and "://" not in storage else DEMO_ROOT
    return ensure_demo_cohort(root / f"{kind}-{subjects}-{seed}", subjects=subjects, seed=seed, kind=kind,
                              **DEMO_KNOBS[image_kind])


def load_cohort(cfg: ExperimentConfig) -> pd.DataFrame:
    """The manifest named by ``cfg.data.manifest`` (or the demo cohort), validated for this run."""
    from xmodal.data.manifest import label_columns, load_manifest

    path = cfg.data.manifest or str(demo_manifest(method(cfg.method).image_kind, storage=cfg.data.storage))
    df = load_manifest(path)
    labels = label_columns(df)
    if cfg.data.pathology not in labels:
        raise SearchError(f"{path}: no label column {cfg.data.pathology!r}; the manifest has {', '.join(labels)}")
    kind = df["image_kind"].iloc[0] if len(df) else "?"
    need = method(cfg.method).image_kind
    if kind != need:
        raise ConfigError(f"method {cfg.method!r} needs a {need} cohort; {path} holds {kind}")
    return df


def check_method(cfg: ExperimentConfig) -> None:
    """Refuse a config whose loss or image encoder is not its method's (``--method`` sets both)."""
    spec = method(cfg.method)
    if cfg.loss.name != spec.loss:
        raise ConfigError(f"method {cfg.method!r} trains with loss.name={spec.loss!r}, not {cfg.loss.name!r}")
    if cfg.model.image_encoder not in spec.encoders:
        raise ConfigError(f"method {cfg.method!r} needs model.image_encoder in {', '.join(spec.encoders)}, "
                          f"not {cfg.model.image_encoder!r}")


MIN_IMAGE_SIZE = {"densenet121": 32}  # its five downsamplings need at least 32 px


def prepare(cfg: ExperimentConfig, *, verbose: bool = True) -> ShardSet:
    check_method(cfg)
    df = load_cohort(cfg)
    shards = preprocess(df, cfg.ecg, cfg.image, Storage(cfg.data.storage), shard_rows=cfg.data.shard_rows,
                        verbose=verbose)
    side, need = (shards.image_shape or (0,))[-1], MIN_IMAGE_SIZE.get(cfg.model.image_encoder, 0)
    if side and side < need:
        raise ConfigError(f"model.image_encoder={cfg.model.image_encoder} needs images of at least {need} px; "
                          f"the cohort's images are stored at {side} px (never upsampled): choose "
                          f"model.image_encoder=small_cnn")
    return shards


def check_splits(shards: ShardSet, pathology: str, label_fraction: float = 1.0,
                 labelled: list[str] | None = None) -> None:
    """Refuse before training: an empty split or a label with one class in training or validation
    (in training, among the ``labelled`` pairs when labels are scarce)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    from xmodal.data.manifest import label_split_problem

    st = shards.storage
    ds = pads.dataset(st.path("shards", shards.key, "data"), format="parquet", filesystem=st.fs)
    t = ds.to_table(columns=["pair_id", "split", pathology],
                    filter=pc.field("ok") & (pc.field("split") != "test")).to_pandas()
    if labelled is not None:
        t = t[(t["split"] != "train") | t["pair_id"].isin(labelled)]
    problem = label_split_problem(t["split"], t[pathology], pathology)
    if problem:
        scarce = f" with data.label_fraction={label_fraction}" if labelled is not None else ""
        raise SearchError(f"{problem} (after dropping bad records{scarce})")


def check_cohort(shards: ShardSet, cfg: ExperimentConfig) -> None:
    """:func:`check_splits` for ``cfg``'s pathology, among the pairs whose labels ``cfg`` trains with."""
    check_splits(shards, cfg.data.pathology, cfg.data.label_fraction, labelled_pairs(cfg))


def run_shared(cfg: ExperimentConfig, shards: ShardSet, *,
               verbose: bool = True) -> tuple[dict[str, StageOutput], FeatureSet | None]:
    """The stages ``cfg``'s trials share (run or reused): ``image_pretrain``, ``ecg_ssl`` and the image
    features, as far as ``cfg.finetune.init`` needs them. A search runs this once before its trials.

    ``image_pretrain`` and ``ecg_ssl`` do not depend on each other: when the cluster has room for both
    (:func:`side_by_side`), the image branch (``image_pretrain`` -> features) and ``ecg_ssl`` train at
    the same time, so their Ray Train start-ups and their compute overlap; when it has not, both train
    in one Ray Train run (:mod:`xmodal.stages.image_pretrain_ecg_ssl`), which pays the start-up once.
    """
    store = StageStore(shards.storage)
    stages: dict[str, StageOutput] = {}

    def image_branch() -> tuple[StageOutput, FeatureSet]:
        out = image_pretrain.run(cfg, shards, store, verbose=verbose)
        return out, features.run(cfg, shards, out.key, verbose=verbose)

    def ssl_branch() -> StageOutput:
        return ecg_ssl.run(cfg, shards, store, verbose=verbose)

    feats = None
    if cfg.finetune.init == "align" and cfg.align.init == "scratch":
        stages["image_pretrain"], feats = image_branch()
    elif cfg.finetune.init == "align":
        missing = not store.exists("image_pretrain", image_pretrain.key_for(cfg, shards)) and \
            not store.exists("ecg_ssl", ecg_ssl.key_for(cfg, shards))
        if missing and side_by_side(cfg):
            image_pretrain.check_weights(cfg)  # before ecg_ssl starts training next to it
            with ThreadPoolExecutor(2, thread_name_prefix="xmodal-shared") as pool:
                image_job, ssl_job = pool.submit(image_branch), pool.submit(ssl_branch)
                (stages["image_pretrain"], feats), stages["ecg_ssl"] = image_job.result(), ssl_job.result()
        else:  # in one run when both are missing (nothing else trains meanwhile), each alone otherwise
            stages["image_pretrain"], stages["ecg_ssl"] = image_pretrain_ecg_ssl.run(
                cfg, shards, store, verbose=verbose, concurrent_workers=cfg.scaling.num_workers)
            feats = features.run(cfg, shards, stages["image_pretrain"].key, verbose=verbose)
    elif cfg.finetune.init == "ssl":
        stages["ecg_ssl"] = ssl_branch()
    return stages, feats


def side_by_side(cfg: ExperimentConfig) -> bool:
    """Whether two of ``cfg``'s Train runs fit in the cluster's free resources at once, with CPUs left
    for their Ray Data reads (which run outside the runs' placement groups: without a free CPU they
    wait forever), on CPUs that are not shared: on one machine whose logical CPUs outnumber its cores,
    two runs side by side take as long as one after the other."""
    import ray

    from xmodal.runtime import oversubscribed

    if not ray.is_initialized() or oversubscribed():
        return False
    s, free = cfg.scaling, ray.available_resources()
    gpus = s.num_workers * (s.gpus_per_worker or 1.0) if s.use_gpu else 0.0
    return free.get("CPU", 0.0) >= 2 * s.num_workers * s.cpus_per_worker + 2 and free.get("GPU", 0.0) >= 2 * gpus


def run_chain(cfg: ExperimentConfig, *, evaluate_test: bool = False, callbacks: list | None = None,
              shards: ShardSet | None = None, verbose: bool = True) -> ChainResult:
    """Run (or reuse) every stage for ``cfg.data.pathology``; ``callbacks`` go to align/finetune runs."""
    shards = shards or prepare(cfg, verbose=verbose)
    check_cohort(shards, cfg)
    store = StageStore(shards.storage)
    kw = {"verbose": verbose}
    stages, feats = run_shared(cfg, shards, verbose=verbose)
    if cfg.finetune.init == "align":
        stages["align"], stages["finetune"] = align_finetune.run(cfg, shards, feats, stages.get("ecg_ssl"), store,
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


def predict_many(shards: ShardSet, store: StageStore, groups: dict[str, list[ExperimentConfig]], *,
                 split: str, n_boot: int = 1000) -> dict[str, dict]:
    """Every group's configs' fine-tuned models scored on ``split`` in one pass
    (:func:`xmodal.stages.evaluate.predict_groups`). Each config's chain is cached: this trains nothing."""
    keyed = {g: [(run_chain(c, shards=shards, verbose=False).stages["finetune"].key, c) for c in cfgs]
             for g, cfgs in groups.items()}
    return evaluate.predict_groups(shards, store, keyed, split=split, n_boot=n_boot)
