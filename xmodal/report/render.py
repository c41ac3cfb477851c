"""Writes a search's outputs: per pathology ``recommended.yaml``, ``trials.parquet`` and figures;
per run ``summary.md``, ``summary.html`` (same content, built from one list of blocks) and
``summary.json`` (the same facts, machine-readable).

Nothing here sees a subject or pair identifier: trials hold overrides and metrics, plots hold
aggregate curves and anonymous embedding points.
"""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path
from typing import Any

from xmodal.config import save_yaml
from xmodal.data.chexpert import label_policies, policies_text
from xmodal.errors import ManifestError
from xmodal.report import plots
from xmodal.report.tables import fmt, table


def header(cfg) -> dict[str, Any]:
    """The method's searched settings by short name (``strategy, k, alpha, beta, tau, ...``, ``lr``),
    null where a setting does not apply at this point (AHNP's ``k`` outside ``topk``...)."""
    from xmodal.config import flatten
    from xmodal.methods import method

    spec, flat = method(cfg.method), flatten(cfg)
    return {key.split(".", 1)[1]: (flat[key] if spec.applies(key, flat) else None) for key in spec.searched}


def header_text(cfg, sep: str = ", ") -> str:
    """The settings of :func:`header` that apply, as ``strategy=topk, k=0.075, ...``."""
    return sep.join(f"{k}={fmt(v) if isinstance(v, float) else v}" for k, v in header(cfg).items() if v is not None)


def portable(cfg):
    """``cfg`` with local paths under the working directory made relative (no machine paths in reports)
    and URIs without credentials (those come from the environment where the config is trained)."""
    from xmodal.config import apply_overrides
    from xmodal.storage import redact_uri

    over = {}
    for key in ("manifest", "storage"):
        v = getattr(cfg.data, key)
        if v:
            over[f"data.{key}"] = redact_uri(v) if "://" in v else _shown(Path(v))
    return apply_overrides(cfg, over) if over else cfg


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies under it."""
    p = Path(path).absolute()
    return str(p.relative_to(Path.cwd())) if p.is_relative_to(Path.cwd()) else str(path)


def _clean(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else (round(v, 4) if isinstance(v, float) else v))
            for k, v in d.items()}


def write_pathology(res, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    s = res.summary
    metrics = {"metrics": {"validation": _clean(s["val"]["recommended"]), "test": _clean(s["test"]["recommended"]),
                           "published_defaults": {"validation": _clean(s["val"]["published"]),
                                                  "test": _clean(s["test"]["published"])},
                           "ecg_only_baseline": {"validation": _clean(s["val"]["baseline"]),
                                                 "test": _clean(s["test"]["baseline"])}},
               "selection": s["selection"]}
    save_yaml(portable(res.config), out / "recommended.yaml", header=header(res.config), extra=metrics,
              comment=f"xmodal recommended config for {res.pathology}: {s['selection']['sentence']}.\n"
                      f"Train it as is: python -m xmodal train --config {_shown(out / 'recommended.yaml')}")
    res.trials.to_parquet(out / "trials.parquet", index=False)
    res.race.to_parquet(out / "race.parquet", index=False)
    figs = {"history": plots.history(res.trials, out / "history.png", f"{res.pathology}: optimisation history"),
            "strategies": plots.strategies(res.trials, out / "strategies.png", f"{res.pathology}: by strategy"),
            "importances": plots.importances(_importances(*res.optuna), out / "importances.png",
                                             f"{res.pathology}: parameter importance")}
    a = res.artefacts
    curves = {f"{role} ({split})": (a[f"roc_{split}"][role]["labels"], a[f"roc_{split}"][role]["scores"])
              for split in ("val", "test") for role in ("recommended", "baseline") if role in a[f"roc_{split}"]}
    figs["roc"] = plots.roc(curves, out / "roc.png", f"{res.pathology}: ROC (ECG only)")
    if a.get("embeddings"):
        e = a["embeddings"]
        figs["embeddings"] = plots.embeddings(e["labels"], e["before"], e["after"], out / "embeddings.png",
                                              f"{res.pathology}: validation ECG embeddings (PCA)")
    res.summary["figures"] = {k: f"{res.pathology}/{v}" for k, v in figs.items() if v}


def _importances(db: str, study: str) -> dict[str, float]:
    import optuna

    try:
        s = optuna.load_study(study_name=study, storage=db)
        return dict(optuna.importance.get_param_importances(s))
    except Exception:  # noqa: BLE001 — too few completed trials, or a single-valued space
        return {}


def _label_policies(results) -> dict[str, str] | None:
    """The CheXpert label policies the run's manifest was built with (None: no manifest, a missing one,
    or one not built by the MIMIC builder)."""
    manifest = results[0].config.data.manifest
    try:
        return label_policies(manifest) if manifest else None
    except ManifestError:
        return None


def _blocks(results, opts) -> list[tuple[str, Any]]:
    b: list[tuple[str, Any]] = [("h1", f"xmodal search report — {opts.run}")]
    policies = _label_policies(results)
    labels = f" Labels: built by the MIMIC builder with {policies_text(policies)}." if policies else ""
    b.append(("p", "After the search, its best configs race the published defaults on fresh shared seeds (the "
                   "ECG-only baseline trains on the same seeds). Validation AUROC is the mean ± sd over those seeds. "
                   "The best found is recommended only when the lower bound of its paired 95 % CI of the gain over "
                   "the published defaults (seeds and validation pairs, Bonferroni over the configs raced) exceeds "
                   f"{opts.min_gain:+g}; otherwise the published defaults are. Test metrics come from one final pass "
                   "over the test split (seed-ensembled logits, bootstrap 95 % CI) after that choice. "
                   "Inference uses the ECG alone." + labels))
    rows = []
    for r in results:
        s = r.summary
        chosen = s["selection"]["chosen"]
        for role, name in (("published", "published defaults"),
                           ("recommended", f"recommended ({'best found' if chosen == 'found' else 'the defaults'})"),
                           ("baseline", "ECG-only baseline")):
            v, t = s["val"][role], s["test"][role]
            rows.append([r.pathology, name, f"{fmt(v['mean_val_auroc'])} ± {fmt(v['sd_val_auroc'])}",
                         f"{fmt(t['auroc'])} [{fmt(t['auroc_lo'])}, {fmt(t['auroc_hi'])}]",
                         f"{fmt(t['auprc'])} [{fmt(t['auprc_lo'])}, {fmt(t['auprc_hi'])}]",
                         f"{fmt(t['seed_auroc_sd'])}"])
        rows.append([r.pathology, "image only (CXR/CMR encoder, val)", fmt(s["image_only_val_auroc"]), "", "", ""])
    b.append(("table", (["pathology", "model", "val AUROC", "test AUROC [95 % CI]", "test AUPRC [95 % CI]",
                         "test AUROC seed sd"], rows)))
    for r in results:
        s = r.summary
        sel = s["selection"]
        b.append(("h2", r.pathology))
        b.append(("p", f"**{sel['sentence'][0].upper() + sel['sentence'][1:]}.** The recommendation against ECG-only: "
                       f"{_interval(sel['delta_vs_ecg_only'])} validation AUROC ({_beyond(sel['delta_vs_ecg_only'])})."))
        b.append(("p", "Recommended: " + header_text(r.config) + f". Config: `{r.pathology}/recommended.yaml`; "
                  f"all trials: `{r.pathology}/trials.parquet`; the race: `{r.pathology}/race.parquet`."))
        b.append(("table", (["candidate", "settings", "seeds", "val AUROC", "gain vs published [CI]", "outcome"],
                            [[x["candidate"], x["settings"], str(x["seeds"]), fmt(x["val_auroc"]),
                              _interval(x["gain_vs_published"]) if x["gain_vs_published"] else "",
                              x["fate"]] for x in s["race"]])))
        b.append(("p", f"{s['trials']} trials ({s['completed']} completed, {s['stopped']} stopped early by ASHA, "
                       f"{s['errors']} failed), {s['concurrency']} at a time; the race ran {sel['rounds']} round(s); "
                       f"{s['minutes']:.1f} min."))
        for key in ("history", "importances", "strategies", "roc", "embeddings"):
            if key in s.get("figures", {}):
                b.append(("img", (key, s["figures"][key])))
    return b


def _interval(d: dict) -> str:
    if d.get("estimate") is None:
        return "–"
    return f"{d['estimate']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"


def _beyond(d: dict) -> str:
    if d.get("lo") is None:
        return "not measured"
    return "above 0 beyond noise" if d["lo"] > 0 else "below 0 beyond noise" if d["hi"] < 0 else "within noise"


def summary_json(results, opts) -> dict[str, Any]:
    """``summary.json``: the facts of ``summary.md``, machine-readable (no identifiers)."""
    out: dict[str, Any] = {"run": opts.run, "min_gain": opts.min_gain, "label_policies": _label_policies(results),
                           "pathologies": {}}
    for r in results:
        s, sel = r.summary, r.summary["selection"]
        out["method"] = r.config.method
        out["rule"] = sel["rule"]
        out["pathologies"][r.pathology] = {
            "image_only_val_auroc": _num(s["image_only_val_auroc"]),
            "ecg_only_val_auroc": _num(s["val"]["baseline"]["mean_val_auroc"]),
            "published_val_auroc": _num(s["val"]["published"]["mean_val_auroc"]),
            "recommended_val_auroc": _num(s["val"]["recommended"]["mean_val_auroc"]),
            "chosen": sel["chosen"], "sentence": sel["sentence"],
            "delta_vs_published": sel["delta_vs_published"], "delta_vs_ecg_only": sel["delta_vs_ecg_only"],
            "recommended": header(r.config),
            "test_auroc": {_ROLE[role]: {"estimate": _num(t["auroc"]), "lo": _num(t["auroc_lo"]),
                                         "hi": _num(t["auroc_hi"])} for role, t in s["test"].items()},
            "race": [{**x, "val_auroc": _num(x["val_auroc"])} for x in s["race"]], "seeds": sel["seeds"], "dropped": sel["dropped"],
            "trials": {k: s[k] for k in ("trials", "completed", "stopped", "errors")}, "minutes": round(s["minutes"], 2)}
    return out


_ROLE = {"recommended": "recommended", "published": "published", "baseline": "ecg_only"}


def _num(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 4)


def write_summary(results, out: Path, opts) -> None:
    blocks = _blocks(results, opts)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(_markdown(blocks))
    (out / "summary.html").write_text(_html(blocks))
    (out / "summary.json").write_text(json.dumps(summary_json(results, opts), indent=1) + "\n")


def _markdown(blocks) -> str:
    lines = []
    for kind, val in blocks:
        if kind == "h1":
            lines += [f"# {val}", ""]
        elif kind == "h2":
            lines += [f"## {val}", ""]
        elif kind == "p":
            lines += [val, ""]
        elif kind == "table":
            lines += [table(*val), ""]
        elif kind == "img":
            lines += [f"![{val[0]}]({val[1]})", ""]
    return "\n".join(lines)


def _html(blocks) -> str:
    body = []
    for kind, val in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{html.escape(val)}</{kind}>")
        elif kind == "p":
            body.append("<p>" + re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(val).replace("`", "")) + "</p>")
        elif kind == "table":
            head, rows = val
            th = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
            trs = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
            body.append(f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>")
        elif kind == "img":
            body.append(f'<p><img src="{html.escape(val[1])}" alt="{html.escape(val[0])}"></p>')
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%}img{max-width:100%}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>xmodal report</title><style>{style}</style>" \
           f"</head><body>{''.join(body)}</body></html>\n"
