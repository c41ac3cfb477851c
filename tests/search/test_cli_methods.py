"""``--method``, ``--smoke-test``, ``--data``, ``--config`` and ``--set`` compose through the method registry."""

import pytest

from xmodal.config import save_yaml
from xmodal.errors import ConfigError
from xmodal.methods import METHODS, sized_config
from xmodal.search.cli import configure, parser


def _cfg(*argv, kind="cine"):
    return configure(parser().parse_args(list(argv)), kind)


@pytest.mark.parametrize("method", ["eccl", "ptacl", "dual_phase"])
def test_smoke_test_with_data_means_the_smallest_sizes_and_the_methods_encoder(method):
    cfg = _cfg("--smoke-test", "--method", method, "--data", "cmr/manifest.parquet")
    spec = METHODS[method]
    assert cfg.model.image_encoder == spec.encoders[0] and cfg.loss.name == spec.loss
    assert (cfg.image.size, cfg.image.cine_frames) == (32, 16)
    assert cfg.model.ecg_width == 32 and cfg.align.epochs == 2  # the smoke preset, not the published sizes
    assert cfg.data.manifest.endswith("cmr/manifest.parquet")


def test_published_sizes_on_own_data_without_smoke_test():
    cfg = _cfg("--method", "ptacl", "--data", "cmr/manifest.parquet")
    assert cfg.model.image_encoder == "cine_transformer" and cfg.image.cine_frames == 50
    assert cfg.model.ecg_width == 256  # ExperimentConfig's published ECG encoder
    cxr = _cfg("--data", "cxr/manifest.parquet", kind="cxr")
    assert (cxr.method, cxr.model.image_encoder, cxr.image.size) == ("cromotex", "densenet121", 224)


def test_the_cohort_picks_the_default_method():
    assert _cfg("--smoke-test").method == "ptacl"
    cfg = _cfg("--smoke-test", kind="cxr")
    assert (cfg.method, cfg.model.image_encoder, cfg.image.size) == ("cromotex", "small_cnn", 32)
    demo = _cfg(kind="cxr")
    assert (demo.image.size, demo.model.image_width) == (64, 16)


def test_the_cxr_demo_runs_in_the_planted_regime_and_set_still_wins():
    from xmodal.stages.chain import DEMO_REGIME

    demo = _cfg(kind="cxr")
    assert (demo.data.label_fraction, demo.data.image_labels) == (DEMO_REGIME["cxr"]["data.label_fraction"], "all")
    assert _cfg("--set", "data.label_fraction=1.0", kind="cxr").data.label_fraction == 1.0
    # not on a cohort of your own, not in a smoke test, not with --config
    assert _cfg("--data", "cxr/manifest.parquet", kind="cxr").data.label_fraction == 1.0
    assert _cfg("--smoke-test", kind="cxr").data.label_fraction == 1.0


def test_set_overrides_the_method_and_size():
    cfg = _cfg("--smoke-test", "--method", "eccl", "--set", "image.size=24", "--set", "loss.lambda_task=0.3")
    assert cfg.image.size == 24 and cfg.loss.lambda_task == 0.3 and cfg.model.image_encoder == "cine_transformer"
    with pytest.raises(ConfigError, match="unknown config key"):
        _cfg("--smoke-test", "--set", "loss.lambda=1")


def test_config_file_keeps_its_settings_unless_method_changes(tmp_path):
    own = tmp_path / "own.yaml"
    save_yaml(sized_config("demo", "cromotex"), own)
    cfg = _cfg("--config", str(own), kind="cxr")
    assert cfg == _cfg("--config", str(own), kind="cxr") and cfg.model.image_encoder == "small_cnn"
    # a CXR config on a cine cohort becomes the cohort's default method, encoder included (the bug: densenet121 kept)
    cine = _cfg("--config", str(own), kind="cine")
    assert (cine.method, cine.model.image_encoder, cine.image.size) == ("ptacl", "cine_transformer", 64)
    explicit = _cfg("--config", str(own), "--method", "dual_phase", kind="cine")  # small_cnn encodes one phase
    assert (explicit.model.image_encoder, explicit.loss.name) == ("small_cnn", "multi_phase_clip")
    published = tmp_path / "published.yaml"
    save_yaml(sized_config("published", "cromotex"), published)
    for method, encoder in (("dual_phase", "phase_cnn"), ("eccl", "cine_transformer")):
        assert _cfg("--config", str(published), "--method", method).model.image_encoder == encoder
    smoke = _cfg("--config", str(own), "--method", "eccl", "--smoke-test", kind="cine")
    assert (smoke.image.size, smoke.image.cine_frames) == (32, 16)


def test_race_budget_flags_and_their_refit_aliases():
    from xmodal.search.cli import BUDGETS, build

    opts, _, _ = build(parser().parse_args(["--race-top", "4", "--race-seeds", "5", "--min-gain", "0.01"]))
    assert (opts.race_top, opts.race_seeds, opts.min_gain) == (4, 5, 0.01)
    opts, _, _ = build(parser().parse_args(["--refit-top", "3", "--refit-seeds", "2"]))  # the old names still work
    assert (opts.race_top, opts.race_seeds, opts.min_gain) == (3, 2, 0.0)
    opts, _, _ = build(parser().parse_args(["--smoke-test"]))
    assert (opts.race_top, opts.race_seeds) == (BUDGETS["smoke"]["race_top"], BUDGETS["smoke"]["race_seeds"])


def test_demo_seed_draws_another_cohort_into_its_own_report():
    from xmodal.search.cli import build

    assert build(parser().parse_args([]))[0].run == "demo"
    assert build(parser().parse_args(["--demo-seed", "1"]))[0].run == "demo-seed1"
    assert build(parser().parse_args(["--demo-seed", "1", "--run", "mine"]))[0].run == "mine"
    with pytest.raises(ConfigError, match="--demo-seed picks a synthetic demo cohort"):
        build(parser().parse_args(["--demo-seed", "1", "--data", "cxr/manifest.parquet"]))
