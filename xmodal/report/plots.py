"""Matplotlib figures of a pathology's search (PNG files; no subject identifiers anywhere)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402


def _save(fig, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def history(trials: pd.DataFrame, path: Path, title: str) -> str:
    """Validation AUROC per trial (in order) and the running best."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    t = trials.sort_values("trial")
    y = t["val_auroc"].astype(float)
    colors = np.where(t["status"] == "completed", "tab:blue", "tab:gray")
    ax.scatter(t["trial"], t["last_val_auroc"].astype(float), c=colors, s=22, label="trial (grey: stopped by ASHA)")
    ax.step(t["trial"], y.ffill().cummax(), where="post", color="tab:red", label="best so far")
    ax.set(xlabel="trial", ylabel="validation AUROC", title=title)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def importances(values: dict[str, float], path: Path, title: str) -> str | None:
    if not values:
        return None
    fig, ax = plt.subplots(figsize=(5.0, 0.4 + 0.35 * len(values)))
    names = list(values)[::-1]
    ax.barh(names, [values[n] for n in names], color="tab:purple")
    ax.set(xlabel="importance (fANOVA)", title=title)
    return _save(fig, path)


def strategies(trials: pd.DataFrame, path: Path, title: str) -> str | None:
    col = "param:loss.strategy"
    if col not in trials:
        return None
    t = trials[trials["status"] == "completed"]
    groups = [(s, t.loc[t[col] == s, "val_auroc"].astype(float).values) for s in ("none", "topk", "linear", "exp")]
    groups = [(s, v) for s, v in groups if len(v)]
    if not groups:
        return None
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    for i, (s, v) in enumerate(groups):
        ax.scatter(np.full(len(v), i) + np.linspace(-0.12, 0.12, len(v)), v, s=20)
        ax.hlines(v.mean(), i - 0.25, i + 0.25, color="k")
    ax.set_xticks(range(len(groups)), [s for s, _ in groups])
    ax.set(ylabel="validation AUROC", title=title)
    return _save(fig, path)


def roc(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str) -> str:
    """curves: label -> (y_true, score)."""
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    for label, (y, s) in curves.items():
        keep = ~np.isnan(y)
        if len(np.unique(y[keep])) < 2:
            continue
        fpr, tpr, _ = roc_curve(y[keep], s[keep])
        ax.plot(fpr, tpr, label=label)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def embeddings(labels: np.ndarray, before: np.ndarray, after: np.ndarray, path: Path, title: str) -> str:
    """PCA of ECG embeddings before (SSL) and after cross-modal alignment, coloured by label."""
    fig, axes = plt.subplots(1, 2, figsize=(7.6, 3.4))
    for ax, emb, name in ((axes[0], before, "before alignment (SSL)"), (axes[1], after, "after alignment")):
        xy = PCA(n_components=2, random_state=0).fit_transform(emb)
        for val, color in ((0.0, "tab:blue"), (1.0, "tab:red")):
            m = labels == val
            ax.scatter(xy[m, 0], xy[m, 1], s=6, alpha=0.6, color=color, label=f"label={int(val)}")
        ax.set(title=name, xticks=[], yticks=[])
    axes[1].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)
