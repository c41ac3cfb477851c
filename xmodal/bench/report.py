"""Turn the sections' figures into ``benchmarks.json``, ``benchmarks.md`` and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

from xmodal.bench.machine import one_line

# (JSON key, section, how to read it from the section, target text, target check)
HEADLINES = [
    ("loss_time_ratio_vs_plain", "loss", lambda s: s["worst_at_1024"]["ratio"], "<= 1.2x (worst strategy, B=1024)",
     lambda v: v <= 1.2),
    ("loss_finite_at_tau_0_01", "loss", lambda s: all(s["finite_at_tau_0_01"]["xmodal"].values()),
     "finite for every strategy", bool),
    ("data_speedup_shards_vs_naive", "data_path", lambda s: s["speedup"]["shards"], ">= 20x", lambda v: v >= 20),
    ("data_speedup_features_vs_naive", "data_path", lambda s: s["speedup"]["features"], ">= 100x",
     lambda v: v >= 100),
    ("trial_speedup_vs_naive", "trial", lambda s: s["speedup"], ">= 10x", lambda v: v >= 10),
    ("tpe_asha_trials_fraction_to_random_best", "search_efficiency",
     lambda s: s["fraction_to_random_best"]["median"], "<= 0.5", lambda v: v <= 0.5),
    ("asha_epochs_saved_fraction", "search_efficiency", lambda s: s["epochs_saved_fraction"]["median"],
     "(reported)", lambda v: None),
    ("peak_worker_rss_mb", "memory", lambda s: s["max_peak_mb"], "<= 2048 MiB (smoke and demo, every method)",
     lambda v: v <= 2048),
    ("trial_time_ratio_vs_inprocess", "trial_vs_inprocess", lambda s: s["ratio"], "<= 1.3 (one at a time)",
     lambda v: v <= 1.3),
    ("trials_per_hour_xmodal", "trial_vs_inprocess", lambda s: s["xmodal_2"]["trials_per_hour"],
     "(two side by side)", lambda v: None),
    ("trials_per_hour_inprocess", "trial_vs_inprocess", lambda s: s["inprocess_2"]["trials_per_hour"],
     "(two side by side)", lambda v: None),
    ("trials_per_hour_ratio_side_by_side", "trial_vs_inprocess",
     lambda s: s["xmodal_2"]["trials_per_hour"] / s["inprocess_2"]["trials_per_hour"], ">= 1 (xmodal ahead)",
     lambda v: v >= 1),
]


def headlines(sections: dict, machine: dict) -> dict:
    out, reasons = {}, {}
    for key, sec, get, _, _ in HEADLINES:
        s = sections.get(sec) or {"reason": "section not run"}
        try:
            out[key] = get(s) if "reason" not in s else None
        except (KeyError, TypeError) as e:
            out[key] = None
            s = {"reason": f"missing figure {e}"}
        if out[key] is None:
            reasons[key] = s.get("reason", "section not run")
    scaling = sections.get("scaling") or {"reason": "section not run"}
    out["scaling_align_pairs_per_second"] = ({str(w): v["median"] for w, v in scaling["workers"].items()}
                                             if "workers" in scaling else None)
    if out["scaling_align_pairs_per_second"] is None:
        reasons["scaling_align_pairs_per_second"] = scaling["reason"]
    return {**out, "machine": machine, "reasons": reasons}


def _fmt(s: dict, unit: str = "", digits: int = 2) -> str:
    return f"{s['median']:.{digits}f}{unit} [{s['min']:.{digits}f}–{s['max']:.{digits}f}]"


def plots(sections: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    made = []
    if "rows" in (loss := sections.get("loss") or {}):
        fig, ax = plt.subplots(figsize=(6, 4))
        for strat in dict.fromkeys(r["strategy"] for r in loss["rows"]):
            rs = [r for r in loss["rows"] if r["strategy"] == strat]
            b = [r["batch"] for r in rs]
            line, = ax.plot(b, [r["seconds"]["xmodal"]["median"] * 1e3 for r in rs], "o-", label=f"xmodal {strat}")
            ax.plot(b, [r["seconds"]["plain"]["median"] * 1e3 for r in rs], "x--", color=line.get_color(),
                    label=f"plain {strat}")
        ax.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="forward+backward (ms)",
               title="AHNP-SupCon kernel, D=256")
        ax.legend(fontsize=7, ncol=2)
        made.append(_save(fig, out / "loss.png"))
    if "speedup" in (data := sections.get("data_path") or {}):
        names = ["naive", "ray_preprocess", "shards", "features"]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.bar(["(a) naive", "(b) Ray preprocess", "(c) shards", "(d) ECG+features"],
               [data[n]["median"] for n in names], color=["grey", "tab:blue", "tab:blue", "tab:green"])
        ax.set(yscale="log", ylabel="paired samples / s", title="Data path")
        made.append(_save(fig, out / "data_path.png"))
    if "speedup" in (trial := sections.get("trial") or {}):
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.bar(["naive trial", "xmodal trial"], [trial["naive_seconds"]["median"], trial["xmodal_seconds"]["median"]],
               color=["grey", "tab:blue"])
        ax.set(ylabel="seconds per trial", title=f"Trial cost ({trial['speedup']:.1f}x)")
        made.append(_save(fig, out / "trial.png"))
    if "curves" in (srch := sections.get("search_efficiency") or {}):
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, curves in srch["curves"].items():
            c = np.array(curves)
            x = np.arange(1, c.shape[1] + 1)
            ax.plot(x, c.mean(0), label=f"{name} (mean of {len(c)} seeds)")
            ax.fill_between(x, c.min(0), c.max(0), alpha=0.2)
        ax.set(xlabel="trials", ylabel="best validation AUROC so far", title="Search efficiency (proxy trial)")
        ax.legend()
        made.append(_save(fig, out / "search_efficiency.png"))
    return made


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path.name


def write(out: Path, *, command: str, machine: dict, sections: dict, seconds: float, quick: bool) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    head = headlines(sections, machine)
    blob = {**head, "command": command, "quick": quick, "seconds": round(seconds, 1), "sections": sections}
    (out / "benchmarks.json").write_text(json.dumps(blob, indent=1, default=str) + "\n")
    images = plots(sections, out)
    (out / "benchmarks.md").write_text(markdown(head, sections, command, machine, seconds, quick, images))
    return head


def _produced(command: str, sections: dict, seconds: float, machine: dict) -> str:
    commands = {s.get("command") or command for s in sections.values()}
    if len(commands) <= 1:
        return f"Produced by `{command}` in {seconds / 60:.1f} min on: {one_line(machine)}."
    return (f"Each section names the command that measured it; the latest, `{command}`, took {seconds / 60:.1f} "
            f"min on: {one_line(machine)}.")


def markdown(head, sections, command, machine, seconds, quick, images) -> str:
    from xmodal.bench import sections_md

    lines = [f"# xmodal benchmarks{' (quick)' if quick else ''}", "",
             _produced(command, sections, seconds, machine), "",
             "Each figure is the median over repeated runs, with [min–max]. Ratios compare against the naive way "
             "measured in the same run. See docs/benchmarks.md for what each section does.", "",
             "| figure | value | target | met |", "|---|---|---|---|"]
    for key, _, _, target, check in HEADLINES:
        v = head[key]
        met = "—" if v is None or check(v) is None else ("yes" if check(v) else "**no**")
        shown = "n/a: " + head["reasons"][key] if v is None else (f"{v:.3g}" if not isinstance(v, bool) else str(v))
        lines.append(f"| {key} | {shown} | {target} | {met} |")
    lines.append("")
    lines += sections_md.render(sections, _fmt)
    lines += [f"![{p}]({p})" for p in images]
    return "\n".join(lines) + "\n"
