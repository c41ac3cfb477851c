"""One console line per finished trial (Tune callback); Tune's own tables stay off."""

from __future__ import annotations

import time

from ray.tune import Callback

from xmodal.search.driver import overrides_in

SHORT = {"loss.strategy": "", "loss.k": "k", "loss.alpha": "α", "loss.beta": "β", "loss.tau": "τ",
         "loss.sigma": "σ", "loss.lambda_local": "λl", "loss.lambda_task": "λt", "loss.lambda_ecg_ed": "λed",
         "loss.lambda_ecg_es": "λes", "loss.lambda_ed_es": "λee", "align.lr": "lr", "finetune.init": "init",
         "align.seed": "seed"}


def describe(overrides: dict) -> str:
    parts = []
    for key, label in SHORT.items():
        if key in overrides:
            v = overrides[key]
            text = f"{v:.3g}" if isinstance(v, float) else str(v)
            parts.append(f"{label}={text}" if label else text)
    return " ".join(parts) or "defaults"


class ProgressLine(Callback):
    def __init__(self, pathology: str, total: int, what: str = "trial"):
        self.pathology, self.total, self.what = pathology, total, what
        self.n = 0
        self.t0 = time.time()

    def _line(self, trial, status: str) -> None:
        self.n += 1
        over = overrides_in(trial.config or {})
        m = trial.last_result or {}
        auc = m.get("val_auroc")
        auc_s = f"val AUROC {auc:.3f}" if isinstance(auc, float) else "no metric"
        epochs = max(0, m.get("training_iteration", 0) - (1 if m.get("final") == 1 else 0))  # less the final report
        how = "all stages cached" if m.get("cached") == 1 else f"{epochs} epochs"
        print(f"  [{self.pathology} {self.what} {self.n}/{self.total}] {status:<9} {describe(over):<48} "
              f"{auc_s}  ({how}, {m.get('time_total_s', 0):.0f}s; {time.time() - self.t0:.0f}s elapsed)",
              flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        m = trial.last_result or {}
        self._line(trial, "done" if m.get("final") == 1 else "stopped")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trial, "FAILED")
