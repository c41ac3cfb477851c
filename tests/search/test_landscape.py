"""The landscape's grid, its resumable result store and its analysis, on simulated logits (no training)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xmodal.report import landscape as report
from xmodal.search.landscape import Grid, Results, analyse, pending, point_id


def test_grid_points_give_alpha_only_where_it_applies_and_k_only_to_topk():
    pts = Grid().points()
    assert len(pts) == 3 + 3 * 3 * 2  # none × τ, then three strategies × τ × α
    assert all("loss.alpha" not in p for p in pts if p["loss.strategy"] == "none")
    assert all(("loss.k" in p) == (p["loss.strategy"] == "topk") for p in pts)
    assert len({point_id(p) for p in pts}) == len(pts)
    assert point_id({"loss.strategy": "exp", "loss.tau": 0.05, "loss.alpha": 2.0, "loss.beta": 2.0}).startswith(
        "exp-t0.05-a2-")


def _simulate(results: Results, quality: dict[str, float], seeds=(1, 2, 3), n=300):
    rng = np.random.default_rng(0)
    y = (rng.random(n) < 0.3).astype(int)
    pair = rng.normal(size=n) + y
    grid = Grid(strategies=("none", "topk", "exp"), taus=(0.01, 0.1), alphas=(2.0,))
    for p in grid.points():
        for s in seeds:
            q = quality.get(p["loss.strategy"], 0.0)
            results.write("edema", p, s, y, pair + (q + rng.normal(0, 0.05)) * y + rng.normal(0, 0.3, n), 1.0)
    return grid


def test_results_resume_where_they_stopped(tmp_path):
    results = Results(tmp_path)
    grid = Grid(strategies=("none", "exp"), taus=(0.01,), alphas=(2.0,))
    todo = pending(results, "edema", grid.points(), [1, 2])
    assert [s for _, s in todo] == [1, 1, 2, 2]  # seed-major: every point gets seed 1 first
    y = np.array([0, 1, 0, 1])
    results.write("edema", todo[0][0], 1, y, np.arange(4.0), 1.0)
    assert pending(Results(tmp_path), "edema", grid.points(), [1, 2]) == todo[1:]
    with pytest.raises(ValueError, match="labels changed"):
        results.write("edema", todo[1][0], 1, np.array([1, 1, 0, 0]), np.arange(4.0), 1.0)


def test_a_resume_with_another_base_config_is_refused(tmp_path):
    from xmodal.config import ExperimentConfig, apply_overrides
    from xmodal.errors import SearchError
    from xmodal.search.landscape import base_fingerprint

    cfg = ExperimentConfig()
    Results(tmp_path).check_base(base_fingerprint(cfg))
    # what each point sets, the pathology and the storage may differ
    Results(tmp_path).check_base(base_fingerprint(apply_overrides(cfg, {"loss.tau": 0.2, "data.pathology": "edema",
                                                                         "data.storage": "/elsewhere"})))
    with pytest.raises(SearchError, match="another base config .*data.label_fraction"):
        Results(tmp_path).check_base(base_fingerprint(apply_overrides(cfg, {"data.label_fraction": 0.1})))

    # a setting the config gained since the runs were stored matches at its default, and only there
    stored = json.loads((tmp_path / "base.json").read_text())
    del stored["finetune.freeze_encoder"]
    (tmp_path / "base.json").write_text(json.dumps(stored))
    Results(tmp_path).check_base(base_fingerprint(cfg))
    with pytest.raises(SearchError, match="finetune.freeze_encoder"):
        Results(tmp_path).check_base(base_fingerprint(apply_overrides(cfg, {"finetune.freeze_encoder": True})))


def test_analysis_resolves_a_clearly_better_strategy_and_not_ties(tmp_path):
    results = Results(tmp_path)
    _simulate(results, {"exp": 0.6})  # exp separates the classes clearly better
    rows = analyse(results, "edema")
    assert rows[0].point["loss.strategy"] == "exp" and rows[0].gain_vs_best is None and rows[0].seeds == 3
    others = [r for r in rows if r.point["loss.strategy"] != "exp"]
    assert others and all(r.resolved_worse for r in others)
    assert not [r for r in rows[1:] if r.point["loss.strategy"] == "exp" and r.resolved_worse]  # exp ties exp

    tied = Results(tmp_path / "null")
    _simulate(tied, {})
    assert not any(r.resolved_worse for r in analyse(tied, "edema"))
    assert "no difference is resolved" in report.sentence("edema", analyse(tied, "edema"))


def test_report_writes_heatmap_table_and_json(tmp_path):
    results = Results(tmp_path / "results")
    _simulate(results, {"topk": 0.6})
    report.write({"edema": analyse(results, "edema")}, tmp_path, {"intro": "simulated", "seeds": 3})
    md = (tmp_path / "landscape.md").read_text()
    assert "## edema" in md and "best topk" in md and "![edema](edema.png)" in md
    assert (tmp_path / "edema.png").stat().st_size > 5000
    facts = json.loads((tmp_path / "landscape.json").read_text())["pathologies"]["edema"]
    assert facts["points"][0]["point"]["loss.strategy"] == "topk" and facts["points"][0]["gain_vs_best"] is None
