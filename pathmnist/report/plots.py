"""The figures of a run: learning curves, confusion matrix, ROC curves, montage, recall.

The seed project kept `figures/loss_curve.png` and `figures/accuracy_curve.png` (train
against validation per epoch); this module draws those two, marking the best epoch and
every learning-rate step, plus the figures of the final evaluation. Matplotlib runs on
its file-only "Agg" backend (no display needed), and every figure is written atomically
(savefig to a temporary file with an explicit format="png", then `os.replace`, via
`pathmnist.files.atomic_path`) and closed after saving.

`roc_points` computes one-vs-rest ROC points with numpy (thresholds at the distinct
sorted scores), following scikit-learn's `roc_curve` step for step; the tests compare it
with `sklearn.metrics.roc_curve`. The AUCs in the ROC legend come from
`pathmnist.evaluation.metrics.roc_auc`. Tested in tests/test_plots.py (valid PNGs, no temporary
files left, bad inputs). `html_image` inlines a figure into a chapter's page.
"""

import base64
import html
import io
import itertools
import textwrap

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from pathmnist.errors import PathMNISTError
from pathmnist.evaluation import metrics
from pathmnist.files import atomic_path

DPI = 120  # Sharp enough for report.md on a laptop screen; a figure stays under ~150 kB.


def subplots(*grid, figsize, layout="constrained", **kw):
    """(figure, axes) like pyplot.subplots, from a bare `matplotlib.figure.Figure`: no
    pyplot state and no backend switch, so a notebook keeps displaying its own figures."""
    fig = Figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(*grid, **kw)


def _save(fig, path):
    """Write `fig` to `path` as PNG atomically and return the path."""
    with atomic_path(path) as tmp:
        # format="png" explicitly: the temporary name ends in ".tmp", not ".png".
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    return path


def html_image(fig, alt) -> str:
    """An <img> tag holding `fig` (a Figure, or the path of a PNG that a function here
    wrote) as an inline base64 PNG: a chapter's executed block prints it, so the built
    site shows the figure with no file beside the page."""
    if isinstance(fig, Figure):
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
        png = buffer.getvalue()
    else:
        with open(fig, "rb") as f:
            png = f.read()
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _wrap(name, width=16):
    """Break a long class name ("colorectal adenocarcinoma epithelium") over lines."""
    return "\n".join(textwrap.wrap(str(name), width)) or str(name)


def _rows(history):
    """The list of per-epoch dicts of a History (or of a plain list of rows)."""
    rows = list(getattr(history, "rows", history))
    if not rows:
        raise PathMNISTError("the history has no epochs to plot; train for at least one epoch.")
    return rows


def _curve(history, path, key, label, best_of):
    """Train and validation `key` per epoch, with the best epoch and LR steps marked."""
    rows = _rows(history)
    epochs = [r["epoch"] for r in rows]
    fig, ax = subplots(figsize=(6, 4), layout="constrained")
    ax.plot(epochs, [r[f"train_{key}"] for r in rows], "o-", label=f"train {label}")
    ax.plot(epochs, [r[f"val_{key}"] for r in rows], "s-", label=f"val {label}")
    best = getattr(history, "best_epoch", None) or best_of(rows)["epoch"]
    ax.axvline(best, color="tab:green", ls="--", lw=1, label=f"best epoch ({best})")
    # An LR step shows as a change of the `lr` column between two epochs; the line sits
    # halfway between them, since the scheduler steps after an epoch ends.
    for prev, cur in itertools.pairwise(rows):
        if cur["lr"] != prev["lr"]:
            step = f"lr {prev['lr']:.0e} -> {cur['lr']:.0e}"
            ax.axvline(cur["epoch"] - 0.5, color="gray", ls=":", lw=1.5, label=step)
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.set_xticks(epochs if len(epochs) <= 20 else epochs[:: max(1, len(epochs) // 10)])
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{label.capitalize()} per epoch")
    return _save(fig, path)


def loss_curve(history, path):
    """Plot train and validation loss per epoch (the seed's loss_curve.png)."""
    return _curve(
        history, path, "loss", "loss", lambda rows: min(rows, key=lambda r: r["val_loss"])
    )


def accuracy_curve(history, path):
    """Plot train and validation accuracy per epoch (the seed's accuracy_curve.png)."""
    return _curve(
        history, path, "acc", "accuracy", lambda rows: max(rows, key=lambda r: r["val_acc"])
    )


def _check_cm(cm, class_names):
    """Return cm as an int array after checking it is (C, C) with C class names."""
    cm = np.asarray(cm)
    c = len(class_names)
    if cm.ndim != 2 or cm.shape != (c, c):
        raise PathMNISTError(
            f"the confusion matrix has shape {cm.shape} but there are {c} class names; pass a "
            f"({c}, {c}) matrix from metrics.confusion_matrix with one name per class."
        )
    return cm


def confusion_matrix_plot(cm, class_names, path):
    """Confusion matrix: counts in the cells, colours normalised per true-class row."""
    cm = _check_cm(cm, class_names)
    c = len(class_names)
    totals = cm.sum(axis=1, keepdims=True)
    # Row-normalised colours show recall per class even when classes differ in size.
    frac = np.divide(cm, totals, out=np.zeros(cm.shape, float), where=totals > 0)
    side = 2.5 + 0.75 * c
    fig, ax = subplots(figsize=(side, side), layout="constrained")
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(c):
        for j in range(c):
            ax.text(
                j,
                i,
                str(int(cm[i, j])),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if frac[i, j] > 0.5 else "black",
            )
    names = [_wrap(n) for n in class_names]
    ax.set_xticks(range(c), names, rotation=45, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(c), names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Confusion matrix (colour: fraction of the true class)")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return _save(fig, path)


def roc_points(y_true, score, drop_intermediate=True):
    """ROC curve of a binary problem: (fpr, tpr, thresholds), as sklearn's roc_curve.

    Sort the scores in decreasing order; each distinct score is a threshold, and the
    cumulative counts of positives and negatives above it are the true and false
    positives. With `drop_intermediate`, points on a straight segment are dropped (they
    do not change the curve). A first point (0, 0) at threshold +inf starts the curve.
    """
    y_true = np.asarray(y_true).ravel()
    score = np.asarray(score, dtype=np.float64).ravel()
    if y_true.shape != score.shape or y_true.size == 0:
        raise PathMNISTError(
            f"roc_points got {y_true.size} labels and {score.size} scores; pass one score per "
            "label, for at least one sample."
        )
    y = y_true.astype(bool)
    if y.all() or not y.any():
        raise PathMNISTError(
            "the ROC curve needs both positive and negative labels; evaluate on a split "
            "that contains the class and at least one other."
        )
    order = np.argsort(score, kind="mergesort")[::-1]  # Stable, so ties keep their order.
    score, y = score[order], y[order]
    # The last index of each run of equal scores, and the last sample overall.
    idx = np.r_[np.flatnonzero(np.diff(score)), y.size - 1]
    tps = np.cumsum(y)[idx]
    fps = 1 + idx - tps
    thresholds = score[idx]
    if drop_intermediate and len(fps) > 2:
        # Keep corners only: points where the second difference of fps or tps is nonzero.
        keep = np.flatnonzero(np.r_[True, np.diff(fps, 2) | np.diff(tps, 2), True])
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    tps, fps = np.r_[0, tps], np.r_[0, fps]
    thresholds = np.r_[np.inf, thresholds]
    return fps / fps[-1], tps / tps[-1], thresholds


def roc_curves(labels, probs, class_names, path):
    """One-vs-rest ROC curve per class, each with its AUC in the legend."""
    labels = np.asarray(labels).ravel()
    probs = np.asarray(probs)
    c = len(class_names)
    if probs.ndim != 2 or probs.shape != (labels.size, c):
        raise PathMNISTError(
            f"roc_curves got {labels.size} labels, scores of shape {probs.shape} and {c} class "
            f"names; pass scores of shape ({labels.size}, {c}), one column per class."
        )
    fig, ax = subplots(figsize=(7, 5.5), layout="constrained")
    colors = matplotlib.colormaps["tab10"]
    for k, name in enumerate(class_names):
        positive = labels == k
        if positive.all() or not positive.any():
            ax.plot([], [], color=colors(k % 10), label=f"{name} (AUC undefined: one class)")
            continue
        fpr, tpr, _ = roc_points(positive, probs[:, k])
        auc = metrics.roc_auc(positive.astype(np.int64), probs[:, k])
        ax.plot(fpr, tpr, color=colors(k % 10), lw=1.5, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="gray", ls="--", lw=1, label="chance (AUC 0.5)")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curves, one class against the rest")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return _save(fig, path)


def montage(imageset, path, per_class=8):
    """A grid of sample images: one row per class (labelled), `per_class` columns.

    Shows the first `per_class` images of each class in the set's order; a class with
    fewer images leaves its remaining cells blank.
    """
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise PathMNISTError(f"per_class must be a positive integer, got {per_class!r}.")
    images, labels = np.asarray(imageset.images), np.asarray(imageset.labels)
    if len(images) != len(labels):
        raise PathMNISTError(
            f"the image set has {len(images)} images but {len(labels)} labels; pass an "
            "ImageSet with one label per image."
        )
    names = list(imageset.class_names)
    c = len(names)
    fig, axes = subplots(
        c,
        per_class,
        figsize=(0.7 * per_class + 1.6, 0.7 * c + 0.4),  # About 1:1 pixels at 64x64.
        squeeze=False,
        layout="constrained",
    )
    for k in range(c):
        chosen = np.flatnonzero(labels == k)[:per_class]
        for j in range(per_class):
            ax = axes[k, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(chosen):
                img = images[chosen[j]]
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
        axes[k, 0].set_ylabel(_wrap(names[k], 18), rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"First {per_class} images of each class")
    return _save(fig, path)


def recall_bars(cm, class_names, path):
    """Horizontal bars of recall (= diagonal / row sum of the confusion matrix) per class."""
    cm = _check_cm(cm, class_names)
    totals = cm.sum(axis=1)
    recall = np.divide(np.diag(cm), totals, out=np.zeros(len(totals)), where=totals > 0)
    texts = [
        f"{r:.3f} (n={int(n)})" if n else "n/a (no samples)"
        for r, n in zip(recall, totals, strict=True)
    ]
    labels = [_wrap(n, 24) for n in class_names]
    colors = ["tab:blue"] * len(labels)
    xlabel = "recall (true positives / samples of the class)"
    return _hbars(recall, labels, texts, colors, xlabel, "Recall per class", path)


def _hbars(values, labels, texts, colors, xlabel, title, path):
    """Horizontal bars in [0, 1], first row on top, each with its value text at its end."""
    fig, ax = subplots(figsize=(7, 0.45 * len(values) + 1.2), layout="constrained")
    y = np.arange(len(values))
    ax.barh(y, values, color=colors)
    for k, text in enumerate(texts):
        ax.text(min(values[k], 1.0) + 0.01, k, text, va="center", fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()  # Row 0 on top: class 0 as in the confusion matrix, or the best trial.
    ax.set_xlim(0, 1.3)  # Room for the value labels right of a full bar.
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)
