"""The baselines table: every model row with its CI, validation only, nothing identifying."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from xmodal.config import ExperimentConfig
from xmodal.report.baselines import ROWS, write
from xmodal.stages.evaluate import evaluate_image_only


def test_write_renders_each_row_with_its_interval_seed_spread_and_paired_deltas(tmp_path):
    models = [name for name, _ in ROWS] + ["image only (reference)"]
    df = pd.DataFrame([{"pathology": "edema", "model": m, "auroc": 0.6 + 0.1 * i, "auroc_lo": 0.5 + 0.1 * i,
                        "auroc_hi": 0.7 + 0.1 * i, "auprc": 0.3, "auprc_lo": 0.2, "auprc_hi": 0.4, "n": 300,
                        "prevalence": 0.21} for i, m in enumerate(models)])
    for i in range(len(ROWS)):  # the ECG rows: 3 seeds each
        df.loc[i, ["seed_auroc_mean", "seed_auroc_sd", "n_seeds"]] = [0.58 + 0.1 * i, 0.01, 3]
    cols = lambda tag: [f"delta_{tag}", f"delta_lo_{tag}", f"delta_hi_{tag}"]  # noqa: E731
    df.loc[[1, 2, 3], cols("scratch")] = [[0.1, 0.05, 0.15], [0.2, 0.12, 0.28], [0.05, -0.01, 0.11]]
    df.loc[[0, 2, 3], cols("ssl")] = [[-0.1, -0.15, -0.05], [0.1, 0.04, 0.16], [-0.05, -0.1, 0.0]]
    md = write(df, tmp_path, command="python searches/compare_baselines.py --subjects 3000",
               cohort="synthetic", seconds=600, seeds=3).read_text()
    assert ("| edema | CroMoTEX (published defaults) | 0.800 [0.700, 0.900] | 0.780 ± 0.010 | +0.200 [+0.120, +0.280] "
            "| +0.100 [+0.040, +0.160] | 0.300 [0.200, 0.400] | 300 | 0.21 |") in md
    assert "| edema | ECG only, from scratch | 0.600 [0.500, 0.700] | 0.580 ± 0.010 | (reference) | -0.100" in md
    assert "| edema | ECG only, SSL init | 0.700 [0.600, 0.800] | 0.680 ± 0.010 | +0.100 [+0.050, +0.150] | (reference) |" in md
    assert "| edema | CroMoTEX without ECG SSL | 0.900 [0.800, 1.000] | 0.880 ± 0.010 | +0.050 [-0.010, +0.110] |" in md
    assert "| edema | image only (reference) | 1.000 [0.900, 1.100] | — | — | — |" in md
    assert md.count("| edema |") == len(models) and "test split is not read" in md
    blob = json.loads((tmp_path / "baselines.json").read_text())
    assert len(blob["rows"]) == len(models) and blob["command"].endswith("--subjects 3000") and blob["seeds"] == 3


def test_image_only_reference_never_reads_test():
    with pytest.raises(PermissionError):
        evaluate_image_only(ExperimentConfig(), None, None, "k", "test")
