"""Figures of multi-seed studies: one dot per seed, the mean and its 95% interval.

A single number per recipe hides how far seeds scatter; this figure shows every run, so
a reader can see at a glance whether two recipes differ by more than their noise.

Tested in tests/test_plots.py (a valid PNG, bad inputs refused).
"""

import numpy as np

from pathmnist.errors import PathMNISTError
from pathmnist.report.plots import _save, subplots
from pathmnist.report.tables import trial_label


def ablation_dots(rows, summary, path):
    """Val and test accuracy per recipe (x) with one dot per seed, and the mean with its 95%
    interval, one panel per shift. `rows` are ablation.read_rows rows, `summary` is
    ablation.summarize of them."""
    shifts = list(dict.fromkeys(r["shift"] for r in rows))
    if not shifts:
        raise PathMNISTError("there are no ablation runs to plot; run at least one.")
    recipes = list(dict.fromkeys(r["recipe"] for r in rows))
    fig, axes = subplots(
        1,
        len(shifts),
        figsize=(1.6 * len(recipes) * len(shifts) + 2, 4.2),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    for ax, shift in zip(axes[0], shifts, strict=True):
        for k, recipe in enumerate(recipes):
            runs = [r for r in rows if r["shift"] == shift and r["recipe"] == recipe]
            entry = next(
                (e for e in summary if e["shift"] == shift and e["recipe"] == recipe), None
            )
            for dx, split, color in ((-0.15, "val", "tab:blue"), (0.15, "test", "tab:red")):
                ys = [r[f"{split}_accuracy"] for r in runs]
                ax.plot(np.full(len(ys), k + dx), ys, "o", color=color, alpha=0.45, ms=4)
                if entry and entry["n"] > 1:
                    mean, low, high = entry[split], entry[f"{split}_low"], entry[f"{split}_high"]
                    ax.errorbar(
                        k + dx + 0.08,
                        mean,
                        yerr=[[mean - low], [high - mean]],
                        fmt="_",
                        color=color,
                        ms=12,
                        capsize=3,
                    )
        ax.set_xticks(range(len(recipes)), recipes, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{shift} shift", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("accuracy (blue: val, red: test)")
    fig.suptitle("One dot per seed; bars: the mean and its 95% interval", fontsize=10)
    return _save(fig, path)


def trials_bar(summary, path):
    """Mean validation accuracy of each trial (`grid.summarize`'s entries, best first),
    with its 95% interval over seeds as an error bar when there are 2 or more seeds."""
    summary = list(summary)
    if not summary:
        raise PathMNISTError("there are no trials to plot; run at least one search trial.")
    labels = [trial_label(s["params"]) + f" ({s['epochs']} ep)" for s in summary]
    acc = [s["val_acc"] for s in summary]
    texts = [f"{s['val_acc']:.3f} ({s['n']} seed{'s' * (s['n'] > 1)})" for s in summary]
    colors = ["tab:green"] + ["tab:blue"] * (len(summary) - 1)
    title = "Tuning: mean val accuracy per trial (green: the best; bars: 95% interval)"
    fig, ax = subplots(figsize=(8, 0.45 * len(acc) + 1.2), layout="constrained")
    y = np.arange(len(acc))
    low = [s["val_acc"] - s["val_acc_low"] if s["n"] > 1 else 0.0 for s in summary]
    high = [s["val_acc_high"] - s["val_acc"] if s["n"] > 1 else 0.0 for s in summary]
    ax.barh(y, acc, color=colors, xerr=[low, high], capsize=3)
    for k, text in enumerate(texts):
        ax.text(min(acc[k] + high[k], 1.0) + 0.01, k, text, va="center", fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.3)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel("mean validation accuracy at the best epoch")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)
