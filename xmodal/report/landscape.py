"""The landscape's report: a heatmap per pathology (strategy × τ, one panel per α), a table of every point
with its paired gain over the best, and one sentence per pathology on which differences are resolved.
Written to ``reports/landscape/`` by ``searches/landscape.py`` (``landscape.md`` and ``landscape.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from xmodal.report.plots import plt
from xmodal.report.tables import fmt, table
from xmodal.search.landscape import Grid, PointSummary


def heatmap(rows: list[PointSummary], path: Path, title: str) -> str:
    """Mean validation AUROC over strategy (rows) × τ (columns), one panel per α (``none`` in every panel).
    ★: the best point; •: not resolved worse than the best (its paired 95 % CI includes 0)."""
    present = {r.point["loss.strategy"] for r in rows}
    strategies = [x for x in Grid.strategies if x in present] + sorted(present - set(Grid.strategies))
    taus = sorted({r.point["loss.tau"] for r in rows})
    alphas = sorted({r.point["loss.alpha"] for r in rows if "loss.alpha" in r.point}) or [None]
    vals = [r.mean_auroc for r in rows]
    lo, hi = min(vals), max(vals)
    fig, axes = plt.subplots(1, len(alphas), figsize=(2.2 + 2.6 * len(alphas), 0.9 + 0.5 * len(strategies)),
                             squeeze=False)
    for ax, alpha in zip(axes[0], alphas):
        grid = np.full((len(strategies), len(taus)), np.nan)
        marks = {}
        for r in rows:
            if r.point.get("loss.alpha") not in (alpha, None):
                continue
            i, j = strategies.index(r.point["loss.strategy"]), taus.index(r.point["loss.tau"])
            grid[i, j] = r.mean_auroc
            marks[i, j] = "★" if r.gain_vs_best is None else ("" if r.resolved_worse else "•")
        im = ax.imshow(grid, cmap="viridis", vmin=lo, vmax=hi, aspect="auto")
        for (i, j), m in marks.items():
            ax.text(j, i, f"{grid[i, j]:.3f}{m}", ha="center", va="center", fontsize=7,
                    color="white" if grid[i, j] < (lo + hi) / 2 else "black")
        ax.set_xticks(range(len(taus)), [f"{t:g}" for t in taus])
        ax.set_yticks(range(len(strategies)), strategies)
        ax.set(xlabel="τ", title=f"α = {alpha:g}" if alpha is not None else "")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="val AUROC")
    fig.suptitle(title, fontsize=9, y=1.04)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path.name


def sentence(pathology: str, rows: list[PointSummary]) -> str:
    """Which differences the landscape resolves, in one sentence."""
    best = rows[0]
    worse = [r for r in rows if r.resolved_worse]
    tied = [r for r in rows[1:] if not r.resolved_worse]
    region = sorted({r.point["loss.strategy"] for r in [best, *tied]})
    if not worse:
        return (f"{pathology}: no difference is resolved: every point's paired 95 % CI against the best "
                f"({_name(best)}, {best.mean_auroc:.3f}) includes 0.")
    return (f"{pathology}: best {_name(best)} ({best.mean_auroc:.3f}); {len(worse)} of {len(rows) - 1} other points "
            f"are resolved worse (paired 95 % CI below 0), {len(tied)} are within noise of it "
            f"(strategies in that region: {', '.join(region)}).")


def _name(r: PointSummary) -> str:
    p = r.point
    return f"{p['loss.strategy']} τ={p['loss.tau']:g}" + (f" α={p['loss.alpha']:g}" if "loss.alpha" in p else "")


def write(by_pathology: dict[str, list[PointSummary]], out: Path, meta: dict[str, Any]) -> None:
    """``landscape.md``, ``landscape.json`` and one heatmap per pathology under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# AHNP loss landscape", "", meta.get("intro", ""), ""]
    facts: dict[str, Any] = {**{k: v for k, v in meta.items() if k != "intro"}, "pathologies": {}}
    for pathology, rows in by_pathology.items():
        if not rows:
            continue
        png = heatmap(rows, out / f"{pathology}.png", f"{pathology}: validation AUROC (★ best, • within noise)")
        lines += [f"## {pathology}", "", sentence(pathology, rows), "", f"![{pathology}]({png})", ""]
        lines.append(table(["point", "seeds", "val AUROC (mean ± sd)", "gain vs best [95 % CI]", "resolved worse"],
                           [[_name(r), str(r.seeds), f"{fmt(r.mean_auroc)} ± {fmt(r.sd_auroc)}",
                             r.gain_vs_best.text() if r.gain_vs_best else "(best)",
                             "yes" if r.resolved_worse else ""] for r in rows]))
        lines.append("")
        facts["pathologies"][pathology] = {
            "sentence": sentence(pathology, rows),
            "points": [{"point": r.point, "seeds": r.seeds, "mean_val_auroc": round(r.mean_auroc, 4),
                        "sd_val_auroc": round(r.sd_auroc, 4),
                        "gain_vs_best": r.gain_vs_best.to_dict() if r.gain_vs_best else None,
                        "resolved_worse": r.resolved_worse} for r in rows]}
    (out / "landscape.md").write_text("\n".join(lines))
    (out / "landscape.json").write_text(json.dumps(facts, indent=1) + "\n")
