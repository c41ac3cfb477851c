"""Markdown tables of each section's figures (used by :mod:`xmodal.bench.report`)."""

from __future__ import annotations


def _reason(s: dict) -> list[str]:
    """A section that did not run: its ``reason`` says why, never "not measured" itself."""
    return [f"Not measured: {s['reason']}.", ""]


def loss(s: dict, fmt) -> list[str]:
    if "reason" in s:
        return _reason(s)
    out = [f"Device {s['device']}, D = {s['dim']}, k/α/β = {s['hyperparameters']}, timed at τ = {s['timing_tau']} "
           "(where the plain loss is still finite). Peak memory: CUDA allocator peak on GPU; on CPU, the bytes "
           "autograd saves for backward (distinct storages), which set the peak.", "",
           "| B | strategy | xmodal ms | plain ms | ratio | xmodal MiB | plain MiB |", "|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        t, m = r["seconds"], r["peak_bytes"]
        ms = {k: {q: v * 1e3 for q, v in t[k].items() if q in ("median", "min", "max")} for k in t}
        out.append(f"| {r['batch']} | {r['strategy']} | {fmt(ms['xmodal'])} | {fmt(ms['plain'])} | {r['ratio']:.2f} | "
                   f"{m['xmodal'] / 2**20:.1f} | {m['plain'] / 2**20:.1f} |")
    out += ["", "Finite loss and gradients at τ = 0.01 (B = 1024, aligned pairs):", "",
            "| implementation | " + " | ".join(s["finite_at_tau_0_01"]["xmodal"]) + " |",
            "|---|" + "---|" * len(s["finite_at_tau_0_01"]["xmodal"])]
    for impl, f in s["finite_at_tau_0_01"].items():
        out.append(f"| {impl} | " + " | ".join("yes" if v else "**no**" for v in f.values()) + " |")
    return out + [""]


def data_path(s: dict, fmt) -> list[str]:
    if "reason" in s:
        return _reason(s)
    rows = [("(a) naive DataLoader, raw WFDB + DICOM", "naive", 1.0),
            ("(b) Ray Data preprocess job, raw files", "ray_preprocess", s["speedup"]["ray_preprocess"]),
            ("(c) stream preprocessed shards", "shards", s["speedup"]["shards"]),
            ("(d) stream ECG + cached image features", "features", s["speedup"]["features"])]
    epochs = s.get("stream_epochs", 1)
    out = [f"(a), (b): {s['raw_pairs']} raw pairs with 3000×2500 16-bit DICOMs. (c), (d): a training stage's data "
           f"path over {epochs} epochs of {s['stream_rows']} training rows, as every stage runs it: one pass of the "
           "Ray Data stream into the worker's memory, then shuffled minibatches of "
           f"{s['batch_size']} each epoch. pairs/s = rows handed to the training loop / the whole time, the "
           "stream's start-up included (the naive loader decodes every sample again each epoch). Apart: the "
           "time to the first batch (a fixed cost per Train run) and the read pass's throughput after it.", "",
           "| path | pairs / s | vs (a) | first batch (s) | read pass, pairs / s |", "|---|---|---|---|---|"]
    extra = lambda key, suffix, d: fmt(s[f"{key}_{suffix}"], digits=d) if f"{key}_{suffix}" in s else "—"  # noqa: E731
    out += [f"| {name} | {fmt(s[key], digits=1)} | {x:.1f}× | {extra(key, 'first_batch_s', 2)} | "
            f"{extra(key, 'read', 1)} |" for name, key, x in rows]
    return out + [""]


def trial(s: dict, fmt) -> list[str]:
    if "reason" in s:
        return _reason(s)
    stages = ", ".join(f"{k} {v:.0f}s" for k, v in s["naive_stage_seconds"][0].items())
    fast = ", ".join(f"{k} {v:.0f}s" for k, v in s["xmodal_stage_seconds"][0].items() if v)
    ph, pg = s["trials_per_hour_2cpu"], s["trials_per_hour_8gpu_projection"]
    img = s.get("image_side", {})
    side = (f" Image side: {img['encoder']} at {img['size']} px, {img['pretrain_epochs']} epoch(s) of image "
            "pretraining; ECG side: smoke preset." if img else "")
    return [f"Smoke preset on the search cohort ({s['pairs']} pairs).{side} Naive: the whole chain on an empty cache "
            f"(stages: {stages}, plus preprocessing and image features). xmodal: `loss.alpha` changed on the warm "
            f"cache, so only align + finetune run ({fast}); the rest was reused: {s['xmodal_reused'][0]}.", "",
            "| trial | seconds | trials / hour (this machine) | 8-GPU node (projection) |", "|---|---|---|---|",
            f"| naive | {fmt(s['naive_seconds'], digits=1)} | {ph['naive']:.0f} | {pg['naive']:.0f} |",
            f"| xmodal | {fmt(s['xmodal_seconds'], digits=1)} | {ph['xmodal']:.0f} | {pg['xmodal']:.0f} |", "",
            f"Speed-up {s['speedup']:.2f}× (range {s['speedup_range'][0]:.2f}–{s['speedup_range'][1]:.2f}×). "
            "Trials/hour here: one trial at a time (a trial holds both cores). The 8-GPU projection is not "
            "measured: it assumes one trial per GPU, each no slower than here.", ""]


def search_efficiency(s: dict, fmt) -> list[str]:
    if "reason" in s:
        return _reason(s)
    out = [f"Proxy trial (see docs/benchmarks.md): {s['train_rows']} train / {s['val_rows']} val pairs, "
           f"{s['samples']} trials × {s['epochs']} epochs per search, {s['seeds']} seeds. TPE + ASHA "
           "(grace 2, reduction 2) against random search (no early stopping), same space and budget.", "",
           "| seed | random best | TPE+ASHA best | TPE+ASHA trials to random best | epochs run / max |",
           "|---|---|---|---|---|"]
    for p in s["per_seed"]:
        reach = p["tpe_asha_trials_to_random_best"] or f"not within {s['samples']}"
        out.append(f"| {p['seed']} | {p['random_best']:.3f} | {p['tpe_asha_best']:.3f} | {reach} | "
                   f"{p['epochs_run']} / {p['epochs_max']} |")
    return out + ["", f"Fraction of the budget TPE+ASHA needs to reach random's final best: "
                      f"{fmt(s['fraction_to_random_best'])} (a seed that never reaches it counts as "
                      f"(n+1)/n; {s['unreached_seeds']} such). ASHA saved {fmt(s['epochs_saved_fraction'])} "
                      "of the trial-epochs.", ""]


def scaling(s: dict, fmt) -> list[str]:
    if "reason" in s:
        return _reason(s)
    out = [f"align stage, {'GPU' if s['use_gpu'] else 'CPU'} workers, including TorchTrainer start-up.", "",
           "| workers | pairs × epochs / s |", "|---|---|"]
    return out + [f"| {w} | {fmt(v, digits=1)} |" for w, v in s["workers"].items()] + [""]


def memory(s: dict, fmt) -> list[str]:
    if "reason" in s:
        return _reason(s)
    out = ["The whole chain per method on its synthetic cohort, with the method's encoder and sizes; each stage's "
           "Train workers report their peak resident memory (`ru_maxrss`). Figure: the largest over the stages.", "",
           "| size | method | image encoder | stored image | peak MiB per worker | largest stage |",
           "|---|---|---|---|---|---|"]
    for c in s["cases"]:
        top = max(c["stage_peak_mb"], key=c["stage_peak_mb"].get)
        shape = " × ".join(str(d) for d in c["image_shape"])
        out.append(f"| {c['size']} | {c['method']} | {c['encoder']} | {shape} | {c['peak_mb']:.0f} | {top} |")
    return out + [""]


def trial_vs_inprocess(s: dict, fmt) -> list[str]:
    if "reason" in s:
        return _reason(s)
    x1, h1, x2, h2 = s["xmodal_1"], s["inprocess_1"], s["xmodal_2"], s["inprocess_2"]
    return [f"The same align + finetune trial (demo preset, published defaults, {s['trials']} seeds; "
            f"{s['rows']['train']} training and {s['rows']['val']} validation rows) through xmodal's search driver "
            "and as a hand-written Optuna loop in one process (no Ray). xmodal's trial time is the Tuner's wall "
            "time over its trials.", "",
            "| | seconds per trial (one at a time) | trials per hour, two side by side |", "|---|---|---|",
            f"| xmodal search trial | {x1['trial_seconds']:.1f} | {x2['trials_per_hour']:.0f} |",
            f"| hand-written, in process | {fmt(h1['trial_seconds'], 's', 1)} | {h2['trials_per_hour']:.0f} |", "",
            f"Ratio (xmodal / in process, one at a time): **{s['ratio']:.2f}**.", ""]


TITLES = {"loss": ("1. Loss kernel", loss), "data_path": ("2. Data path", data_path),
          "trial": ("3. Trial cost", trial), "search_efficiency": ("4. Search efficiency", search_efficiency),
          "scaling": ("5. Scaling", scaling), "memory": ("6. Memory per Train worker", memory),
          "trial_vs_inprocess": ("7. Trial against a hand-written loop", trial_vs_inprocess)}


def render(sections: dict, fmt) -> list[str]:
    out = []
    for name, (title, fn) in TITLES.items():
        sec = sections.get(name) or {"reason": "section not run"}
        out += [f"## {title}", ""] + fn(sec, fmt)
        if sec.get("command"):
            out += [f"Measured by `{sec['command'].strip()}`.", ""]
    return out
