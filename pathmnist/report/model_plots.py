"""Figures of what a model does: misclassified images, reliability diagrams, Grad-CAM grids.

- `misclassified_grid(images, labels, preds, class_names, path)`: the first wrongly
  classified images of a split (every run's report shows them), each titled with its true
  and predicted class.

- `reliability_diagram(before, after, path)`: two panels, before and after temperature
  scaling. Each bar is one confidence bin of `calibration.reliability`: its height is the
  bin's accuracy, a red outline marks the bin's mean confidence, and the diagonal is perfect
  calibration (accuracy = confidence), as in Guo et al. 2017, Figure 1. The ECE is in each
  panel's title.
- `gradcam_grid(images, maps, labels, preds, class_names, path)`: correctly and wrongly
  classified images side by side; each sample shows the image and its Grad-CAM map
  (pathmnist.evaluation.gradcam) overlaid in the "jet" colour map at half opacity, titled with the
  true and predicted class.

Matplotlib runs on the file-only "Agg" backend and each figure is written atomically by
`pathmnist.report.plots._save` (same DPI as every other figure of a run). Tested in
tests/test_model_plots.py and tests/test_run_report.py (valid PNGs, no temporary file
left, bad inputs raise).
"""

import numpy as np
import torch

from pathmnist.errors import PathMNISTError
from pathmnist.evaluation.calibration import Reliability
from pathmnist.report.plots import _save, _wrap, subplots


def _bars(ax, rel, title):
    width = np.diff(rel.edges)  # (M,) bin widths
    left = rel.edges[:-1]
    full = rel.count > 0  # Empty bins get no bar.
    ax.bar(left[full], rel.accuracy[full], width[full], align="edge", color="tab:blue",
           edgecolor="black", lw=0.5, label="accuracy")  # fmt: skip
    # The gap to the bin's mean confidence: calibrated bars reach their red line.
    ax.bar(left[full], rel.confidence[full], width[full], align="edge", fill=False,
           edgecolor="tab:red", lw=1.2, label="mean confidence")  # fmt: skip
    ax.plot([0, 1], [0, 1], color="gray", ls="--", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_title(f"{title}\nECE {rel.ece:.4f}, {int(rel.count.sum())} samples")


def reliability_diagram(before, after, path, temperature=None):
    """Reliability diagrams before and after temperature scaling, side by side.

    `before` and `after` are `calibration.reliability(...)` results; `temperature`, when
    given, is printed in the second title.
    """
    for name, rel in (("before", before), ("after", after)):
        if not isinstance(rel, Reliability) or int(np.sum(rel.count)) == 0:
            raise PathMNISTError(
                f"reliability_diagram got {name}={type(rel).__name__}; pass the result of "
                "calibration.reliability(labels, probs) with at least one sample."
            )
    fig, axes = subplots(1, 2, figsize=(9, 4.6), layout="constrained")
    after_title = "after temperature scaling"
    if temperature is not None:
        after_title += f" (T = {float(temperature):.3f})"
    _bars(axes[0], before, "before temperature scaling")
    _bars(axes[1], after, after_title)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def _to_nhwc(images, who="gradcam_grid"):
    """Images for imshow: uint8 (N, H, W, 3) as stored, or float (N, 3, H, W) in [0, 1]."""
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if x.ndim == 4 and x.dtype == np.uint8 and x.shape[-1] == 3:
        return x
    if x.ndim == 4 and np.issubdtype(x.dtype, np.floating) and x.shape[1] == 3:
        return np.clip(x.transpose(0, 2, 3, 1), 0.0, 1.0)  # (N, H, W, 3)
    raise PathMNISTError(
        f"{who} got images of dtype {x.dtype} and shape {x.shape}; pass uint8 "
        "(N, H, W, 3) or float (N, 3, H, W) in [0, 1] (before Normalize)."
    )


def _ints(a, n, k, name, who="gradcam_grid"):
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    if a.shape != (n,) or not np.issubdtype(a.dtype, np.integer) or (a < 0).any() or (a >= k).any():
        raise PathMNISTError(
            f"{who} got {name} of shape {a.shape}; pass {n} class indices in [0, {k})."
        )
    return a


def gradcam_grid(images, maps, labels, preds, class_names, path):
    """Grad-CAM overlays: correct predictions on the left, wrong ones on the right.

    images: uint8 (N, H, W, 3) or float (N, 3, H, W) in [0, 1]; maps: (N, H, W) in [0, 1]
    from grad_cam; labels, preds: (N,) class indices. Each row holds up to one correct and
    one wrong sample, each as the image and its overlay.
    """
    x = _to_nhwc(images)
    n, h, w = x.shape[:3]
    m = maps.detach().cpu().numpy() if isinstance(maps, torch.Tensor) else np.asarray(maps)
    if n == 0 or m.shape != (n, h, w):
        raise PathMNISTError(
            f"gradcam_grid got {n} images of {h}x{w} and maps of shape {m.shape}; pass at "
            f"least one image and one map (N, H, W) per image (grad_cam's output)."
        )
    k = len(class_names)
    y, p = _ints(labels, n, k, "labels"), _ints(preds, n, k, "preds")
    groups = (np.flatnonzero(y == p), np.flatnonzero(y != p))  # (correct, wrong)
    rows = max(len(g) for g in groups)
    fig, axes = subplots(
        rows, 4, figsize=(7.2, 2.1 * rows + 0.6), squeeze=False, layout="constrained"
    )
    for ax in axes.flat:
        ax.set_axis_off()
    for side, (group, word) in enumerate(zip(groups, ("correct", "wrong"), strict=True)):
        for r, i in enumerate(group):
            raw, over = axes[r, 2 * side], axes[r, 2 * side + 1]
            raw.imshow(x[i], vmin=0, vmax=255 if x.dtype == np.uint8 else 1)
            over.imshow(x[i], vmin=0, vmax=255 if x.dtype == np.uint8 else 1)
            over.imshow(m[i], cmap="jet", alpha=0.5, vmin=0, vmax=1)
            title = f"true: {_wrap(class_names[y[i]], 28)}\npred: {_wrap(class_names[p[i]], 28)}"
            raw.set_title(title, fontsize=7, color="tab:green" if word == "correct" else "tab:red")
            over.set_title("Grad-CAM", fontsize=7)
    fig.suptitle(f"Grad-CAM: {len(groups[0])} correct (left), {len(groups[1])} wrong (right)")
    return _save(fig, path)


def misclassified_grid(images, labels, preds, class_names, path, max_images=24, columns=8):
    """The first `max_images` misclassified images of a split, in its order, `columns` to a
    row, each titled with its true and predicted class. images: uint8 (N, H, W, 3) or
    float (N, 3, H, W) in [0, 1]; labels, preds: (N,) class indices. A split without an
    error gives a figure that says so."""
    x, who = _to_nhwc(images, "misclassified_grid"), "misclassified_grid"
    k = len(class_names)
    y, p = _ints(labels, len(x), k, "labels", who), _ints(preds, len(x), k, "preds", who)
    wrong = np.flatnonzero(y != p)
    shown = wrong[: max(1, int(max_images))]
    rows = max(1, -(-len(shown) // columns))  # ceil
    fig, axes = subplots(rows, columns, figsize=(1.25 * columns, 1.45 * rows + 0.5),
                         squeeze=False, layout="constrained")  # fmt: skip
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, i in zip(axes.flat, shown, strict=False):
        ax.imshow(x[i], vmin=0, vmax=255 if x.dtype == np.uint8 else 1)
        true, pred = _wrap(class_names[y[i]], 14), _wrap(class_names[p[i]], 14)
        ax.set_title(f"true: {true}\npred: {pred}", fontsize=6, color="tab:red")
    what = f"{len(shown)} of {len(wrong)}" if len(wrong) else "none"
    fig.suptitle(f"Misclassified images of {len(x)} ({what} shown)", fontsize=9)
    return _save(fig, path)
