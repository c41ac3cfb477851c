"""A smoke search for each CMR method (ECCL, PTACL, Dual-phase) on one synthetic cine cohort.

The three searches share the cohort, its shards and the stages they have in common (``ecg_ssl``; ECCL
and PTACL share ``image_pretrain``), as searches on one cohort do. Each method must run with its own
encoder at the smoke sizes, sample only its own settings, and write a recommended config and a report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from xmodal.methods import METHODS

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)
def test_each_cmr_method_runs_a_smoke_search_with_its_own_encoder_space_and_report(ray_local, tmp_path):
    from xmodal.config import load_yaml
    from xmodal.search import cli

    storage, reports = tmp_path / "cache", tmp_path / "reports"
    for method in ("ptacl", "eccl", "dual_phase"):
        # The same command a user types (a CMR --method picks the synthetic CMR cohort), one trial each:
        # the published defaults, then the race against ECG-only and the final evaluation.
        code = cli.main(["--smoke-test", "--method", method, "--num-samples", "1", "--race-seeds", "1",
                         "--storage", str(storage), "--reports", str(reports), "--run", method])
        assert code == 0, method
        out = reports / method / "mi"
        raw = yaml.safe_load((out / "recommended.yaml").read_text())
        spec = METHODS[method]
        assert list(raw["recommended"]) == [k.split(".", 1)[1] for k in spec.searched], method
        cfg = load_yaml(out / "recommended.yaml")
        assert (cfg.method, cfg.loss.name, cfg.model.image_encoder) == (method, spec.loss, spec.encoders[0])
        assert (cfg.image.size, cfg.image.cine_frames) == (32, 16)
        trials = __import__("pandas").read_parquet(out / "trials.parquet")
        sampled = {c.split(":", 1)[1] for c in trials.columns if c.startswith("param:")}
        assert sampled == set(spec.searched), method
        summary = (reports / method / "summary.md").read_text()
        assert "mi" in summary and (out / "roc.png").stat().st_size > 0 and (out / "history.png").exists()
        facts = json.loads((reports / method / "summary.json").read_text())["pathologies"]["mi"]
        assert facts["chosen"] == raw["selection"]["chosen"] and facts["ecg_only_val_auroc"] is not None, method

    # The cohort's 64 px x 25-frame cines were stored at the smoke sizes (32 px x 16 frames), never larger.
    metas = [json.loads(p.read_text()) for p in Path(storage).glob("shards/*/meta.json")]
    assert metas and all(m["image_shape"] == [16, 32, 32] for m in metas)
