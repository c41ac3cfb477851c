"""The report writer: a trainable recommended.yaml, trials, figures and the same summary in md and html."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from xmodal.config import ExperimentConfig, apply_overrides, load_yaml
from xmodal.data.chexpert import LABEL_POLICIES_KEY
from xmodal.data.manifest import save_manifest
from xmodal.report.render import write_pathology, write_summary
from xmodal.search.driver import SearchOptions
from xmodal.search.run import PathologyResult


def _metrics(auc: float) -> dict:
    return {"auroc": auc, "auroc_lo": auc - 0.1, "auroc_hi": auc + 0.05, "auprc": auc / 2, "auprc_lo": 0.1,
            "auprc_hi": 0.6, "seed_auroc_sd": 0.01}


@pytest.fixture
def result(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    cfg = apply_overrides(ExperimentConfig(), {
        "data.pathology": "edema", "data.manifest": str(tmp_path / "cohort" / "manifest.parquet"),
        "data.storage": str(tmp_path / "cache"), "loss.strategy": "exp", "loss.alpha": 2.5, "loss.tau": 0.05})
    trials = pd.DataFrame({"trial": range(4), "param:loss.strategy": ["topk", "exp", "none", "linear"],
                           "param:loss.tau": [0.01, 0.05, 0.1, 0.2], "val_auroc": [0.7, 0.8, None, 0.6],
                           "last_val_auroc": [0.7, 0.8, 0.55, 0.6], "iterations": [5, 5, 2, 5],
                           "status": ["completed", "completed", "stopped", "completed"]})
    y = rng.integers(0, 2, 50)
    roc = {role: {"labels": y, "scores": y + rng.normal(0, 0.8, 50)} for role in ("recommended", "baseline")}
    val = {"mean_val_auroc": 0.8, "sd_val_auroc": 0.02, "mean_val_auprc": 0.5, "n_ok": 2, "config": 0}
    gain = {"estimate": 0.012, "lo": -0.01, "hi": 0.034}
    selection = {"rule": "race ...", "chosen": "published", "rounds": 3,
                 "sentence": "no setting beat the published defaults beyond noise: +0.012 [-0.010, +0.034]",
                 "delta_vs_published": gain, "delta_vs_ecg_only": {"estimate": 0.05, "lo": 0.01, "hi": 0.09},
                 "candidates": {"found-1": "strategy=exp", "published": "strategy=topk"},
                 "seeds": {"found-1": [1, 2, 3], "published": [1, 2, 3]}, "dropped": []}
    race = [{"candidate": "found-1", "settings": "strategy=exp", "seeds": 3, "val_auroc": 0.81,
             "gain_vs_published": gain, "fate": "kept to the end"},
            {"candidate": "published", "settings": "strategy=topk", "seeds": 3, "val_auroc": 0.8,
             "gain_vs_published": None, "fate": "recommended"}]
    summary = {"val": {r: val for r in ("recommended", "published", "baseline")},
               "test": {r: _metrics(0.75) for r in ("recommended", "published", "baseline")},
               "image_only_val_auroc": 0.9, "trials": 4, "completed": 3, "stopped": 1, "errors": 0,
               "minutes": 1.5, "concurrency": 2, "selection": selection, "race": race}
    emb = {"labels": y, "before": rng.normal(size=(50, 16)), "after": rng.normal(size=(50, 16))}
    return PathologyResult("edema", trials, trials.head(2), {"loss.strategy": "exp"}, cfg, summary,
                           {"roc_val": roc, "roc_test": roc, "embeddings": emb})


def test_recommended_config_names_object_stores_without_credentials(result, tmp_path):
    from dataclasses import replace

    uri = "s3://AKIA123:s3cr3t@bucket/xmodal?endpoint_override=minio:9000&scheme=http"
    res = replace(result, config=apply_overrides(result.config, {"data.storage": uri}))
    write_pathology(res, tmp_path / "out")
    rec = load_yaml(tmp_path / "out" / "recommended.yaml")
    assert rec.data.storage == "s3://bucket/xmodal?endpoint_override=minio:9000&scheme=http"


def test_pathology_outputs_and_summary(result, tmp_path):
    out = tmp_path / "reports" / "run"
    write_pathology(result, out / "edema")
    write_summary([result], out, SearchOptions(run="run"))

    rec = out / "edema" / "recommended.yaml"
    raw = yaml.safe_load(rec.read_text())
    assert raw["recommended"] == {"strategy": "exp", "k": None, "alpha": 2.5, "beta": 2.0, "tau": 0.05, "lr": 1e-4}
    assert raw["metrics"]["test"]["auroc"] == 0.75 and "ecg_only_baseline" in raw["metrics"]
    assert raw["data"]["manifest"] == "cohort/manifest.parquet"  # no machine paths
    cfg = load_yaml(rec)  # trainable as it stands
    assert cfg.loss.strategy == "exp" and cfg.data.pathology == "edema"

    assert len(pd.read_parquet(out / "edema" / "trials.parquet")) == 4
    for png in ("history", "strategies", "roc", "embeddings"):
        assert (out / "edema" / f"{png}.png").stat().st_size > 1000
    md, page = (out / "summary.md").read_text(), (out / "summary.html").read_text()
    for text in ("published defaults", "recommended (the defaults)", "ECG-only baseline", "0.750 [0.650, 0.800]",
                 "No setting beat the published defaults beyond noise: +0.012 [-0.010, +0.034]",
                 "+0.050 [+0.010, +0.090] validation AUROC (above 0 beyond noise)", "kept to the end"):
        assert text in md and text in page
    assert raw["selection"]["chosen"] == "published" and raw["selection"]["delta_vs_published"] == {
        "estimate": 0.012, "lo": -0.01, "hi": 0.034}
    facts = json.loads((out / "summary.json").read_text())["pathologies"]["edema"]
    assert {"image_only_val_auroc", "ecg_only_val_auroc", "recommended_val_auroc", "chosen", "delta_vs_published",
            "delta_vs_ecg_only"} <= set(facts)
    assert facts["chosen"] == "published" and facts["delta_vs_ecg_only"]["lo"] == 0.01
    assert facts["image_only_val_auroc"] == 0.9 and facts["recommended_val_auroc"] == 0.8
    assert "![roc](edema/roc.png)" in md and 'src="edema/roc.png"' in page
    assert str(tmp_path) not in md + page + rec.read_text()


def test_summary_states_the_label_policies_of_a_mimic_manifest(result, tmp_path):
    from dataclasses import replace

    sentence = "Labels: built by the MIMIC builder with uncertain=ignore (-1 -> NaN), blank=negative (blank -> 0)."
    demo = replace(result, config=apply_overrides(result.config, {"data.manifest": ""}))  # the synthetic demo
    for res, out in ((result, tmp_path / "none"), (demo, tmp_path / "demo")):  # result's manifest does not exist
        write_summary([res], out, SearchOptions(run="run"))
        assert "Labels:" not in (out / "summary.md").read_text()
        assert json.loads((out / "summary.json").read_text())["label_policies"] is None

    policies = {"uncertain": "ignore", "blank": "negative"}
    manifest = pd.DataFrame({"pair_id": ["p0"], "subject_id": ["s0"], "ecg_path": ["/e/0.hea"],
                             "image_path": ["/c/0.dcm"], "image_kind": ["cxr"], "split": ["train"],
                             "ecg_time": [pd.NaT], "image_time": [pd.NaT], "edema": [1.0]})
    save_manifest(manifest, result.config.data.manifest, metadata={LABEL_POLICIES_KEY: json.dumps(policies)})
    write_summary([result], tmp_path / "mimic", SearchOptions(run="run"))
    md, page = (tmp_path / "mimic" / "summary.md").read_text(), (tmp_path / "mimic" / "summary.html").read_text()
    assert sentence in md.split("\n\n")[1]  # the intro paragraph
    assert sentence.replace(">", "&gt;") in page
    assert json.loads((tmp_path / "mimic" / "summary.json").read_text())["label_policies"] == policies
