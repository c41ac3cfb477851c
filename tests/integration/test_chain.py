"""End to end on CPU: every stage with 2 Ray Train workers, stage reuse, and test-split hygiene."""

from __future__ import annotations

from pathlib import Path

import pytest

from xmodal.config import apply_overrides
from xmodal.data.pipeline import read_access_log
from xmodal.errors import RecordError, SearchError
from xmodal.stages.chain import check_splits, load_cohort, run_chain
from xmodal.stages.store import StageStore

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)
def test_chain_runs_reuses_shared_stages_and_keeps_test_split_closed(ray_local, smoke_cfg):
    cfg = apply_overrides(smoke_cfg, {"scaling.num_workers": 2})
    first = run_chain(cfg, verbose=False)
    store = StageStore(first.shards.storage)
    for name in ("image_pretrain", "ecg_ssl", "align", "finetune"):
        out = first.stages[name]
        assert store.exists(name, out.key) and not out.reused
        meta = store.load(name, out.key).meta
        assert meta["config"]["data"]["pathology"] == cfg.data.pathology
        assert meta["data_fingerprint"] and meta["code_version"]
    # Local Ray holds more logical CPUs than the machine has cores: the four stages took two Train runs,
    # each named after its last stage (image_pretrain + ecg_ssl, then align + finetune).
    runs = sorted(p.name for p in (Path(cfg.data.storage) / "ray_train").iterdir())
    assert runs == sorted(f"{n}-{first.stages[n].key}" for n in ("ecg_ssl", "finetune"))
    # Validation metrics were reported every epoch of align and finetune.
    for name, epochs in (("align", cfg.align.epochs), ("finetune", cfg.finetune.epochs)):
        hist = first.stages[name].metrics["history"]
        assert [h["epoch"] for h in hist] == list(range(epochs))
        assert all(0.0 <= h["val_auroc"] <= 1.0 and "val_auprc" in h and "val_loss" in h for h in hist)
    assert 0.0 <= first.val["val_auroc"] <= 1.0

    # Only the AHNP settings change: shared stages, shards and image features are reused, so no image
    # is decoded (preprocessing) or encoded (features) again.
    second = run_chain(apply_overrides(cfg, {"loss.strategy": "exp", "loss.alpha": 2.0}), verbose=False)
    assert second.reused == {"preprocess": True, "image_pretrain": True, "ecg_ssl": True, "features": True,
                             "align": False, "finetune": False}
    assert second.stages["image_pretrain"].key == first.stages["image_pretrain"].key
    assert second.stages["align"].key != first.stages["align"].key
    # align + finetune trained in one Ray Train run, yet each stage has its own output and history.
    assert [h["epoch"] for h in second.stages["align"].metrics["history"]] == list(range(cfg.align.epochs))
    assert second.stages["finetune"].meta["inputs"] == {"align": second.stages["align"].key}

    log = read_access_log(first.shards.storage, first.shards.key)
    assert log and all(r["split"] != "test" for r in log), "a stage read the test split"

    # The explicit final evaluation is the one reader of the test split.
    third = run_chain(cfg, evaluate_test=True, verbose=False)
    assert all(third.reused.values())
    assert 0.0 <= third.test["auroc"] <= 1.0 and third.test["auroc_lo"] <= third.test["auroc_hi"]
    tests = [r for r in read_access_log(first.shards.storage, first.shards.key) if r["split"] == "test"]
    assert [r["purpose"] for r in tests] == ["final_evaluation"]
    # Asked again, the same final evaluation returns its recorded result: the test split stays read once.
    again = run_chain(cfg, evaluate_test=True, verbose=False)
    assert again.test == third.test
    assert sum(r["split"] == "test" for r in read_access_log(first.shards.storage, first.shards.key)) == 1


@pytest.mark.timeout(300)
def test_scarce_labels_retrain_labelled_stages_and_reuse_ecg_ssl(ray_local, smoke_cfg):
    full = run_chain(smoke_cfg, verbose=False)
    scarce = run_chain(apply_overrides(smoke_cfg, {"data.label_fraction": 0.5}), verbose=False)
    assert scarce.reused["ecg_ssl"] and scarce.stages["ecg_ssl"].key == full.stages["ecg_ssl"].key  # label-free
    for name in ("image_pretrain", "align", "finetune"):  # trained on labels: their own outputs
        assert not scarce.reused[name] and scarce.stages[name].key != full.stages[name].key
    assert [h["epoch"] for h in scarce.stages["align"].metrics["history"]] == list(range(smoke_cfg.align.epochs))
    assert 0.0 <= scarce.val["val_auroc"] <= 1.0

    # So few labelled subjects that training would see one class: refused before any training, by name.
    df = load_cohort(smoke_cfg)
    one_pair = df.loc[(df["split"] == "train") & df[smoke_cfg.data.pathology].notna(), "pair_id"].iloc[:1].tolist()
    with pytest.raises(SearchError, match="single class.*train.*label_fraction=0.01"):
        check_splits(full.shards, smoke_cfg.data.pathology, 0.01, one_pair)


@pytest.mark.timeout(420)
def test_trials_on_a_warm_cache_train_side_by_side_reuse_what_they_can_and_survive_a_crash(ray_local, smoke_cfg,
                                                                                           stage_cache):
    """Refit trials as a search runs them: two train at once (each in its trial's process, with Ray Data
    reads) while another crashes. A change to ``finetune`` alone reuses the aligned encoder; the ablation
    ``align.init = scratch`` (only the image teaches) neither runs nor reads ``ecg_ssl``.

    Regression: trials that reserved their Train workers' CPUs a second time left Ray Data no CPU,
    and the trainers waited on their reads forever.
    """
    import ray

    from xmodal.search.driver import SearchOptions, max_concurrent, refit

    cfg = apply_overrides(smoke_cfg, {"scaling.num_workers": 1})
    aligned_over = {"loss.strategy": "exp", "loss.alpha": 2.0}
    aligned = run_chain(apply_overrides(cfg, aligned_over), verbose=False)  # cached by the chain test above
    opts = SearchOptions(run="warm", max_failures=0)
    assert max_concurrent(opts, ray.cluster_resources()) >= 2
    finetune_only = {**aligned_over, "finetune.lr": 0.002}
    configs = [{"loss.nope": 1.0}, {"finetune.init": "ssl"}, finetune_only, {"align.init": "scratch"}]
    trials = refit(configs, cfg, opts, storage=str(stage_cache / "tune"), tag="t", concurrency=2)
    assert sorted(trials["status"]) == ["completed"] * 3 + ["error"]
    err = trials.loc[trials["status"] == "error", "error"].iloc[0]
    assert err.startswith("ConfigError") and "loss.nope" in err, err
    assert trials.loc[trials["status"] == "completed", "val_auroc"].between(0, 1).all()

    # The trials stored their stages: these resolve them and train nothing.
    refit_ft = run_chain(apply_overrides(cfg, finetune_only), verbose=False)
    assert all(refit_ft.reused.values())
    assert refit_ft.stages["align"].key == aligned.stages["align"].key  # stored before the trial: not retrained
    assert refit_ft.stages["finetune"].key != aligned.stages["finetune"].key
    assert [h["epoch"] for h in refit_ft.stages["finetune"].metrics["history"]] == list(range(cfg.finetune.epochs))

    scratch = run_chain(apply_overrides(cfg, {"align.init": "scratch"}), verbose=False)
    assert all(scratch.reused.values()) and "ecg_ssl" not in scratch.stages
    assert scratch.stages["align"].meta["inputs"] == {"features": scratch.features.key}
    assert scratch.stages["finetune"].meta["inputs"] == {"align": scratch.stages["align"].key}
    assert 0.0 <= scratch.val["val_auroc"] <= 1.0


@pytest.mark.timeout(300)
def test_exported_image_encoder_is_a_new_starting_point(ray_local, smoke_cfg, tmp_path, capsys):
    """``export-image-encoder`` writes the pretrained encoder; a chain starting from that file has its
    own ``image_pretrain`` key, and new weights at the same path make a new key again."""
    from dataclasses import replace

    import torch

    from xmodal.__main__ import main
    from xmodal.config import save_yaml
    from xmodal.models.registry import build_image_encoder
    from xmodal.stages import image_pretrain
    from xmodal.stages.chain import prepare

    save_yaml(smoke_cfg, tmp_path / "cfg.yaml")
    path = tmp_path / "encoder.pt"
    assert main(["export-image-encoder", "--config", str(tmp_path / "cfg.yaml"), "--out", str(path)]) == 0
    assert "model.image_weights=" in capsys.readouterr().out

    shards = prepare(smoke_cfg, verbose=False)
    store = StageStore(shards.storage)
    source = image_pretrain.encoder_state(store, image_pretrain.key_for(smoke_cfg, shards))
    loaded = build_image_encoder(replace(smoke_cfg.model, image_weights=str(path))).state_dict()
    assert loaded.keys() == source.keys() and all(torch.equal(loaded[k], source[k]) for k in source)

    warm = apply_overrides(smoke_cfg, {"model.image_weights": str(path)})
    key = image_pretrain.key_for(warm, shards)
    assert key != image_pretrain.key_for(smoke_cfg, shards)
    torch.save({k: v + 1 for k, v in source.items()}, path)
    assert image_pretrain.key_for(warm, shards) != key


@pytest.mark.timeout(300)
def test_a_weights_file_that_does_not_load_stops_the_chain_before_ray_train_starts(ray_local, smoke_cfg, tmp_path):
    from xmodal.stages import image_pretrain
    from xmodal.stages.chain import prepare

    bad = tmp_path / "cxr-encoder.pt"
    bad.write_bytes(b"garbage\n")
    cfg = apply_overrides(smoke_cfg, {"model.image_weights": str(bad)})
    shards = prepare(cfg, verbose=False)
    runs = lambda: set(shards.storage.listdir("ray_train")) if shards.storage.exists("ray_train") else set()  # noqa: E731
    before = runs()
    with pytest.raises(RecordError, match=r"cxr-encoder.pt: not a tensor state dict"):
        run_chain(cfg, shards=shards, verbose=False)
    assert runs() == before  # no Train run started (nor the one of image_pretrain + ecg_ssl)
    assert not StageStore(shards.storage).exists(image_pretrain.STAGE, image_pretrain.key_for(cfg, shards))
