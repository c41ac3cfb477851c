import optuna
import pytest

from xmodal.errors import SearchError
from xmodal.search.space import SearchSpace, clip_point, load_space, published_point


def _params(space, cine, seed=0, n=40):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        t = study.ask()
        space.suggest(t, cine=cine)
        out.append(dict(t.params))
        study.tell(t, 0.5)
    return out


def test_conditional_parameters():
    for p in _params(SearchSpace(), cine=False):
        assert ("loss.k" in p) == (p["loss.strategy"] == "topk")
        assert ("loss.alpha" in p) == (p["loss.strategy"] != "none")
        assert "loss.sigma" not in p and "loss.lambda_local" not in p
        assert 0.005 <= p["loss.tau"] <= 0.5 and "align.lr" in p
    assert all("loss.sigma" in p and "loss.lambda_local" in p for p in _params(SearchSpace(), cine=True))


def test_published_point_and_clipping():
    p = published_point(False, 1e-3)
    assert p == {"loss.strategy": "topk", "loss.k": 0.075, "loss.alpha": 4.5, "loss.beta": 2.0, "loss.tau": 0.01,
                 "align.lr": 1e-3}
    assert "loss.sigma" in published_point(True, 1e-3)
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
