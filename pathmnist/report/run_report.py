"""A run's report files: metrics.json, the figures and report.md, written atomically.

The seed project shipped a written report next to its notebook; every example here
writes one into its run directory, from the same numbers it prints:

    config.json  history.csv  best.pt   (written by fit)
    metrics.json {"val": {"accuracy", "accuracy_ci95", "macro_auc", "macro_auc_ci95",
                 "loss", "n"}, "test": {...}} (+ comparisons where an example makes them)
    figures/     loss_curve.png, accuracy_curve.png, confusion_<split>.png, roc_<split>.png,
                 recall_<split>.png, misclassified_<split>.png, montage.png
    report.md    the command, data and time it was written; a warning when the best epoch
                 is the last; config, curves, metrics table, per-class report and recall
                 with 95% Wilson intervals, figures

Tested in tests/test_run_report.py.
"""

import datetime
import shlex
import sys
from pathlib import Path

import numpy as np

from pathmnist.errors import PathMNISTError
from pathmnist.evaluation import metrics, stats
from pathmnist.files import write_json, write_text
from pathmnist.report import model_plots, plots
from pathmnist.report.tables import _interval, format_report, markdown_table


def split_metrics(evaluation, auc_resamples: int = 1000) -> dict:
    """What metrics.json keeps per split: accuracy with its 95% Wilson interval, macro AUC
    with a 95% bootstrap interval (over images; `auc_resamples` resamples, 0 to skip), and
    the loss."""
    n = len(evaluation.labels)
    correct = round(evaluation.accuracy * n)
    out = {
        "accuracy": float(evaluation.accuracy),
        "accuracy_ci95": list(stats.wilson_interval(correct, n)),
        "macro_auc": float(evaluation.macro_auc),
        "loss": float(evaluation.loss),
        "n": n,
    }
    if auc_resamples:
        try:
            out["macro_auc_ci95"] = list(
                stats.bootstrap_macro_auc(evaluation.labels, evaluation.probs, auc_resamples)
            )
        except PathMNISTError:  # Too few images of a class to resample: no interval.
            out["macro_auc_ci95"] = None
    return out


def write_metrics(out_dir, evaluations: dict, extra: dict | None = None) -> Path:
    """metrics.json: one object per evaluated split, e.g. {"val": {...}, "test": {...}},
    plus any `extra` entries (comparisons, decisions)."""
    body = {split: split_metrics(ev) for split, ev in evaluations.items()}
    return write_json(Path(out_dir) / "metrics.json", {**body, **(extra or {})})


def save_figures(
    out_dir, history=None, evaluations=None, class_names=(), images=None, split_images=None
) -> dict:
    """Draw every figure the run has data for into out_dir/figures; return {title: path}.
    images: an ImageSet for the montage; split_images: {split: ImageSet or uint8 images}
    of evaluated splits, for their grids of misclassified images."""
    fig_dir = Path(out_dir) / "figures"
    figures = {}
    if history is not None and history.rows:
        figures["Loss"] = plots.loss_curve(history, fig_dir / "loss_curve.png")
        figures["Accuracy"] = plots.accuracy_curve(history, fig_dir / "accuracy_curve.png")
    for split, ev in (evaluations or {}).items():
        cm = metrics.confusion_matrix(ev.labels, ev.probs.argmax(1), len(class_names))
        figures[f"Confusion matrix ({split})"] = plots.confusion_matrix_plot(
            cm, class_names, fig_dir / f"confusion_{split}.png"
        )
        figures[f"ROC curves ({split})"] = plots.roc_curves(
            ev.labels, ev.probs, class_names, fig_dir / f"roc_{split}.png"
        )
        figures[f"Recall per class ({split})"] = plots.recall_bars(
            cm, class_names, fig_dir / f"recall_{split}.png"
        )
        if split in (split_images or {}):
            shown = getattr(split_images[split], "images", split_images[split])
            figures[f"Misclassified images ({split})"] = model_plots.misclassified_grid(
                shown, ev.labels, ev.probs.argmax(1), class_names,
                fig_dir / f"misclassified_{split}.png",
            )  # fmt: skip
    if images is not None:
        figures["Sample images per class"] = plots.montage(images, fig_dir / "montage.png")
    return figures


NOT_CONVERGED = "the best epoch is the last: the run may not have converged"


def header(command=None, data=None, written=None) -> str:
    """The lines at the top of report.md: the command that ran (by default this process's
    own, `python` and sys.argv), the data it read, and when the report was written (by
    default now, in UTC)."""
    command = shlex.join(["python", *sys.argv]) if command is None else command
    if written is None:
        written = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        f"- Command: `{command}`",
        f"- Data: `{data}`" if data is not None else "- Data: not recorded by this run",
        f"- Written: {written}",
    ])  # fmt: skip


def convergence_warning(history) -> str | None:
    """A warning when the best epoch is the last one trained (the validation monitor was
    still improving when training ended), else None."""
    rows = list(getattr(history, "rows", None) or [])
    if not rows or history.best_epoch != rows[-1]["epoch"]:
        return None
    return (f"> **Warning:** {NOT_CONVERGED} (best epoch {history.best_epoch} of "
            f"{len(rows)}); train longer before concluding from it.")  # fmt: skip


def recall_table(labels, preds, class_names) -> str:
    """Recall per class with its 95% Wilson interval and the number of images."""
    cm = metrics.confusion_matrix(labels, preds, len(class_names))
    rows = []
    for k, name in enumerate(class_names):
        n, hit = int(cm[k].sum()), int(cm[k, k])
        low, high = stats.wilson_interval(hit, n) if n else (np.nan, np.nan)
        recall = f"{hit / n:.3f}" if n else "n/a"
        rows.append((name, recall, f"[{low:.3f}, {high:.3f}]" if n else "n/a", n))
    return markdown_table(["class", "recall", "95% interval (Wilson)", "images"], rows)


def render_report(
    title, config=None, history=None, evaluations=None, class_names=(), figures=None, sections=(),
    command=None, data=None, written=None,
) -> str:  # fmt: skip
    """report.md's text: what ran (command, data, time), how it went, what it scored, and
    the figures."""
    parts = [f"# {title}", header(command, data, written)]
    warning = convergence_warning(history) if history is not None else None
    if warning:
        parts.append(warning)
    if config is not None:
        parts.append(
            "## Configuration\n\n"
            + markdown_table(
                ["setting", "value"], [(k, f"`{v}`") for k, v in config.to_dict().items()]
            )
        )
    if history is not None and history.rows:
        rows = [
            (
                r["epoch"],
                f"{r['train_loss']:.4f}",
                f"{r['train_acc']:.4f}",
                f"{r['val_loss']:.4f}",
                f"{r['val_acc']:.4f}",
                f"{r['val_auc']:.4f}",
                f"{r['lr']:.2e}",
                f"{r['seconds']:.1f}",
            )
            for r in history.rows
        ]
        stop = "stopped early" if history.stopped_early else "ran all epochs"
        parts.append(
            f"## Training\n\nBest epoch {history.best_epoch} (weights restored); {stop}.\n\n"
            + markdown_table(
                ["epoch", "train loss", "train acc", "val loss", "val acc", "val AUC", "lr", "s"],
                rows,
            )
        )
    if evaluations:
        parts.append(
            "## Metrics\n\n"
            + markdown_table(
                ["split", "accuracy", "95% interval", "macro AUC", "loss", "images"],
                [
                    (
                        s,
                        f"{ev.accuracy:.4f}",
                        _interval(ev),
                        f"{ev.macro_auc:.4f}",
                        f"{ev.loss:.4f}",
                        len(ev.labels),
                    )
                    for s, ev in evaluations.items()
                ],
            )
        )
        split, ev = list(evaluations.items())[-1]
        report = metrics.classification_report(ev.labels, ev.probs.argmax(1), class_names)
        parts.append(f"## Per-class report ({split})\n\n" + format_report(report))
        parts.append(
            f"## Recall per class with 95% intervals ({split})\n\n"
            + recall_table(ev.labels, ev.probs.argmax(1), class_names)
        )
    parts += list(sections)
    if figures:
        parts.append(
            "## Figures\n\n"
            + "\n\n".join(
                f"### {name}\n\n![{name}](figures/{Path(p).name})" for name, p in figures.items()
            )
        )
    return "\n\n".join(parts) + "\n"


def write_report(out_dir, title, **kwargs) -> Path:
    """Render report.md into out_dir atomically (see `render_report` for the arguments)."""
    return write_text(Path(out_dir) / "report.md", render_report(title, **kwargs))
