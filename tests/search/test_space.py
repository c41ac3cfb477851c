import optuna
import pytest

from xmodal.config import apply_overrides, flatten
from xmodal.errors import SearchError
from xmodal.losses.registry import LOSSES
from xmodal.methods import METHODS, sized_config
from xmodal.search.space import SearchSpace, clip_point, load_space, published_point

STRUCTURAL = {"name", "global_loss"}  # loss settings a method fixes, never searched


def _params(space, method, seed=0, n=60):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        t = study.ask()
        space.suggest(t, method)
        out.append(dict(t.params))
        study.tell(t, 0.5)
    return out


def _read_by_loss(method: str) -> set[str]:
    """The LossConfig fields the method's loss reads when built from config (recorded attribute access)."""
    cfg = sized_config("smoke", method).loss
    seen: set[str] = set()

    class Recording:
        def __getattr__(self, name):
            seen.add(name)
            return getattr(cfg, name)

    LOSSES[cfg.name].from_config(Recording())
    return {f"loss.{k}" for k in seen} - {f"loss.{k}" for k in STRUCTURAL}


def test_conditional_parameters():
    for p in _params(SearchSpace(), "cromotex"):
        assert ("loss.k" in p) == (p["loss.strategy"] == "topk")
        assert ("loss.alpha" in p) == (p["loss.strategy"] != "none")
        assert "loss.sigma" not in p and "loss.lambda_local" not in p
        assert 0.005 <= p["loss.tau"] <= 0.5 and "align.lr" in p
    assert all("loss.sigma" in p and "loss.lambda_local" in p for p in _params(SearchSpace(), "ptacl"))


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_samples_exactly_the_settings_its_loss_reads(method):
    sampled = set().union(*(p for p in _params(SearchSpace(), method)))
    assert sampled - {"align.lr"} == _read_by_loss(method)
    assert "align.lr" in sampled
    assert set(METHODS[method].searched) == sampled


def test_ahnp_settings_are_not_sampled_for_losses_that_ignore_them():
    for method in ("eccl", "dual_phase"):
        sampled = set().union(*(p for p in _params(SearchSpace(), method)))
        assert not sampled & {"loss.strategy", "loss.k", "loss.alpha", "loss.beta"}, method
    assert set().union(*_params(SearchSpace(), "eccl")) == {"loss.tau", "loss.lambda_task", "align.lr"}


def test_recording_catches_a_setting_the_loss_reads():
    # The parity check above can fail: a loss reading one more setting than its method searches.
    class Wider(LOSSES["clip_task"]):
        @classmethod
        def from_config(cls, cfg):
            _ = cfg.sigma
            return super().from_config(cfg)

    LOSSES_BEFORE = dict(LOSSES)
    try:
        LOSSES["clip_task"] = Wider
        assert "loss.sigma" in _read_by_loss("eccl")
    finally:
        LOSSES.clear()
        LOSSES.update(LOSSES_BEFORE)


@pytest.mark.parametrize("method", list(METHODS))
def test_published_point_is_the_methods_defaults_and_inside_the_space(method):
    point = published_point(method, 1e-3)
    assert set(point) == set(METHODS[method].searched) and point["align.lr"] == 1e-3
    cfg = apply_overrides(sized_config("demo", method), point)
    flat = flatten(cfg)
    for key, value in METHODS[method].defaults.items():
        assert flat[key] == value
    assert clip_point(point, SearchSpace()) == point  # the published defaults lie inside the default ranges


def test_published_point_and_clipping():
    p = published_point("cromotex", 1e-3)
    assert p == {"loss.strategy": "topk", "loss.k": 0.075, "loss.alpha": 4.5, "loss.beta": 2.0, "loss.tau": 0.01,
                 "align.lr": 1e-3}
    assert "loss.sigma" in published_point("ptacl", 1e-3)
    clipped = clip_point({**p, "loss.tau": 1e-4}, SearchSpace())
    assert clipped["loss.tau"] == SearchSpace().tau[0]


def test_space_yaml_overrides_and_errors(tmp_path):
    f = tmp_path / "space.yaml"
    f.write_text("tau: [0.01, 0.1]\nstrategies: [topk, exp]\n")
    s = load_space(f)
    assert s.tau == (0.01, 0.1) and s.strategies == ("topk", "exp")
    f.write_text("temperature: [0.01, 0.1]\n")
    with pytest.raises(SearchError, match="unknown search-space key"):
        load_space(f)
    f.write_text("tau: [0.5, 0.1]\n")
    with pytest.raises(SearchError, match="low <= high"):
        load_space(f)
    f.write_text("strategies: [hardest]\n")
    with pytest.raises(SearchError, match="strategies"):
        load_space(f)
