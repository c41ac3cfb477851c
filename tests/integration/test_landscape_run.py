"""The landscape end to end at the smoke size: it trains each (point, seed) once, stores it, writes the
report, and a rerun trains nothing."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)
def test_landscape_stores_each_run_reports_and_resumes(ray_local, tiny_cohort, stage_cache, tmp_path, capsys):
    from xmodal.search.landscape import main

    out = tmp_path / "landscape"
    argv = ["--data", str(tiny_cohort), "--size", "smoke", "--storage", str(stage_cache), "--out", str(out),
            "--pathologies", "cardiomegaly", "--strategies", "none", "exp", "--taus", "0.1", "--alphas", "2",
            "--seeds", "1"]
    assert main(argv) == 0
    stored = sorted(p.parent.name for p in (out / "results" / "cardiomegaly").glob("*/seed-1.json"))
    assert len(stored) == 2 and stored[0].startswith("exp-t0.1-a2-") and stored[1].startswith("none-t0.1-")
    facts = json.loads((out / "landscape.json").read_text())["pathologies"]["cardiomegaly"]
    assert len(facts["points"]) == 2 and facts["points"][0]["gain_vs_best"] is None
    assert (out / "cardiomegaly.png").stat().st_size > 0 and "## cardiomegaly" in (out / "landscape.md").read_text()

    capsys.readouterr()
    assert main(argv) == 0  # resumed: everything is stored, nothing trains
    assert "2 of 2 runs stored, 0 to train" in capsys.readouterr().out
