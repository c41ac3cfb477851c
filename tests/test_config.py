import pytest
import yaml

from xmodal.config import (ExperimentConfig, apply_overrides, config_hash, dump_yaml, flatten, from_dict,
                           load_yaml, parse_override, save_yaml, to_dict)
from xmodal.errors import ConfigError


def test_defaults_match_published_cromotex_setup():
    cfg = ExperimentConfig()
    assert (cfg.loss.strategy, cfg.loss.k, cfg.loss.alpha, cfg.loss.beta, cfg.loss.tau) == ("topk", 0.075, 4.5, 2.0, 0.01)
    assert (cfg.ecg.fs, cfg.ecg.seconds) == (100, 10.0)


def test_yaml_round_trip(tmp_path):
    cfg = apply_overrides(ExperimentConfig(), {"loss.tau": 0.05, "loss.lambda_ed_es": 3, "method": "dual_phase",
                                               "loss.name": "multi_phase_clip"})
    save_yaml(cfg, tmp_path / "c.yaml")
    assert load_yaml(tmp_path / "c.yaml") == cfg
    assert cfg.loss.lambda_ed_es == 3.0


def test_recommended_header_and_metrics_are_ignored_on_load(tmp_path):
    cfg = apply_overrides(ExperimentConfig(), {"loss.strategy": "exp"})
    text = dump_yaml(cfg, header={"strategy": "exp", "k": None}, extra={"metrics": {"validation": {"auroc": 0.8}}})
    assert text.index("recommended:") < text.index("method:")
    (tmp_path / "r.yaml").write_text(text)
    assert load_yaml(tmp_path / "r.yaml") == cfg


@pytest.mark.parametrize("key,value,match", [
    ("loss.tua", 0.1, "unknown config key 'loss.tua'"),
    ("nope", 1, "unknown config key 'nope'"),
    ("loss.tau", "small", "expected a number"),
    ("align.epochs", 2.5, "expected an integer"),
    ("data.balanced_sampling", "yes", "expected true/false"),
    ("loss", 1, "is a section"),
    ("loss.strategy", "hardest", "not one of"),
    ("loss.k", 0.0, "fraction"),
])
def test_overrides_fail_loudly(key, value, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(ExperimentConfig(), {key: value})


def test_int_is_accepted_for_float_and_bool_is_not_int():
    assert apply_overrides(ExperimentConfig(), {"loss.alpha": 3}).loss.alpha == 3.0
    with pytest.raises(ConfigError):
        apply_overrides(ExperimentConfig(), {"align.epochs": True})


def test_from_dict_rejects_unknown_nested_keys():
    with pytest.raises(ConfigError, match="model.width"):
        from_dict({"model": {"width": 3}})


def test_parse_override_types():
    assert parse_override("loss.tau=0.05") == ("loss.tau", 0.05)
    assert parse_override("loss.strategy=topk") == ("loss.strategy", "topk")
    assert parse_override("data.balanced_sampling=true") == ("data.balanced_sampling", True)
    with pytest.raises(ConfigError):
        parse_override("loss.tau")


def test_load_yaml_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("loss: {tau: [unclosed")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML at line 1, column 22: expected") as err:
        load_yaml(bad)
    assert "\n" not in str(err.value)  # one line, where the parser stopped
    bad.write_text(yaml.safe_dump({"loss": {"tau": "x"}}))
    with pytest.raises(ConfigError, match="bad.yaml: loss.tau"):
        load_yaml(bad)


def test_flatten_and_hash_are_stable():
    cfg = ExperimentConfig()
    flat = flatten(cfg)
    assert flat["loss.tau"] == 0.01 and flat["model.ecg_width"] == 256
    assert config_hash(cfg) == config_hash(from_dict(to_dict(cfg)))
    assert config_hash(cfg) != config_hash(apply_overrides(cfg, {"loss.tau": 0.02}))
