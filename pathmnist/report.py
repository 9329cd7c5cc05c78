"""The run directory: metrics.json, the figures and report.md, written atomically.

The seed project shipped a written report next to its notebook; every example here
writes one into its run directory, from the same numbers it prints:

    config.json  history.csv  best.pt   (written by training.fit)
    metrics.json {"val": {"accuracy", "accuracy_ci95", "macro_auc", "macro_auc_ci95",
                 "loss", "n"}, "test": {...}} (+ comparisons where an example makes them)
    figures/     loss_curve.png, accuracy_curve.png, confusion_<split>.png, roc_<split>.png,
                 recall_<split>.png, montage.png
    report.md    config, curves, metrics table, per-class report, figures

Tested in tests/test_report.py.
"""

from pathlib import Path

from pathmnist import metrics, plots, stats
from pathmnist.errors import PathMNISTError
from pathmnist.io import write_json, write_text


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


def compare(name_a, ev_a, name_b, ev_b) -> dict:
    """Two evaluations of the same images (e.g. two models on val): the accuracy
    difference and the exact McNemar test of it, as a JSON-ready dict with a sentence."""
    if not (len(ev_a.labels) == len(ev_b.labels) and (ev_a.labels == ev_b.labels).all()):
        raise PathMNISTError(
            "compare needs two evaluations of the same images (the same labels in the same "
            "order); evaluate both models on one split."
        )
    test = stats.mcnemar(ev_a.probs.argmax(1) == ev_a.labels, ev_b.probs.argmax(1) == ev_b.labels)
    diff = float(ev_a.accuracy - ev_b.accuracy)
    verdict = "larger than the noise" if test.p_value < 0.05 else "within the noise"
    return {
        "a": name_a,
        "b": name_b,
        "accuracy_difference": diff,
        "only_a_right": test.b,
        "only_b_right": test.c,
        "mcnemar_p": test.p_value,
        "sentence": f"{name_a} minus {name_b}: {diff:+.4f} accuracy ({test.b} images only "
        f"{name_a} got right, {test.c} only {name_b}; exact McNemar p = {test.p_value:.3g}): "
        f"{verdict} at the 5% level.",
    }


def carried(comparison: dict | None, alpha: float = 0.05) -> str:
    """Lesson 3's rule, fixed before the test split is opened: carry the tuned model only
    if `compare("tuned", ..., "baseline", ...)` on validation shows it better by more than
    the noise (McNemar p < alpha); otherwise the baseline, the simpler choice. No
    comparison (no baseline given): the tuned model."""
    if comparison is None:
        return "tuned"
    better = comparison["accuracy_difference"] > 0 and comparison["mcnemar_p"] < alpha
    return "tuned" if better else "baseline"


def format_rounds(result) -> str:
    """Successive halving's rounds (a `halving.HalvingResult` over the search space) as
    Markdown: one line per round with its budget and the scores of its candidates."""
    lines = ["## Successive halving", ""]
    for rnd in sorted({r.round for r in result.records}):
        recs = [r for r in result.records if r.round == rnd]
        scores = ", ".join(f"#{r.candidate}: {r.score:.3f}" for r in recs)
        lines.append(
            f"- round {rnd + 1}: {len(recs)} candidates x {recs[0].resource} epochs: {scores}"
        )
    lines.append(
        f"\nWinner: candidate #{result.winner}; compute {result.compute} epochs "
        "(per training image)."
    )
    return "\n".join(lines)


def save_figures(out_dir, history=None, evaluations=None, class_names=(), images=None) -> dict:
    """Draw every figure the run has data for into out_dir/figures; return {title: path}."""
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
    if images is not None:
        figures["Sample images per class"] = plots.montage(images, fig_dir / "montage.png")
    return figures


def markdown_table(header, rows, align=None) -> str:
    """A Markdown table from a header list and rows of already-formatted cells; `align`
    is one of "l", "r" per column (default: the first left, the rest right)."""
    align = align or ["l"] + ["r"] * (len(header) - 1)
    rule = "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def format_report(report: dict[str, dict], digits: int = 4) -> str:
    """The report of `metrics.classification_report` as a Markdown table."""
    rows = [
        (
            f"**{name}**" if name == metrics.MACRO else name,
            *(f"{row[k]:.{digits}f}" for k in ("precision", "recall", "f1")),
            row["support"],
        )
        for name, row in report.items()
    ]
    return markdown_table(["class", "precision", "recall", "F1", "support"], rows) + "\n"


def render_report(
    title, config=None, history=None, evaluations=None, class_names=(), figures=None, sections=()
) -> str:
    """report.md's text: what ran, how it went, what it scored, and the figures."""
    parts = [f"# {title}"]
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
    parts += list(sections)
    if figures:
        parts.append(
            "## Figures\n\n"
            + "\n\n".join(
                f"### {name}\n\n![{name}](figures/{Path(p).name})" for name, p in figures.items()
            )
        )
    return "\n\n".join(parts) + "\n"


def _interval(ev) -> str:
    n = len(ev.labels)
    low, high = stats.wilson_interval(round(ev.accuracy * n), n)
    return f"[{low:.4f}, {high:.4f}]"


def write_report(out_dir, title, **kwargs) -> Path:
    """Render report.md into out_dir atomically (see `render_report` for the arguments)."""
    return write_text(Path(out_dir) / "report.md", render_report(title, **kwargs))


def format_table(evaluations: dict, history=None) -> str:
    """The short table an example prints at the end: one line per evaluated split."""
    lines = []
    if history is not None and history.rows:
        lines.append(
            f"best epoch {history.best_epoch} of {len(history.rows)}"
            + (" (stopped early)" if history.stopped_early else "")
        )
    lines.append(f"{'split':<6} {'accuracy':>9} {'95% interval':>18} {'macro AUC':>10} {'loss':>8}")
    lines += [
        f"{s:<6} {ev.accuracy:>9.4f} {_interval(ev):>18} {ev.macro_auc:>10.4f} {ev.loss:>8.4f}"
        for s, ev in evaluations.items()
    ]
    return "\n".join(lines)


def format_results(summary) -> str:
    """A Markdown table of ranked trials (`tuning.summarize`): parameters, epochs, seeds,
    mean val accuracy with its 95% interval over seeds, mean val loss at the best epoch."""
    keys = sorted({k for s in summary for k in s["params"]})
    header = ["rank", *keys, "epochs", "seeds", "val acc (mean)", "95% interval", "val loss", "s"]
    rows = []
    for i, s in enumerate(summary, 1):
        interval = (
            "n/a (1 seed)" if s["n"] < 2 else f"[{s['val_acc_low']:.3f}, {s['val_acc_high']:.3f}]"
        )
        rows.append(
            (
                i,
                *(s["params"].get(k, "") for k in keys),
                s["epochs"],
                s["n"],
                f"{s['val_acc']:.4f}",
                interval,
                f"{s['val_loss']:.4f}",
                f"{s['seconds']:.0f}",
            )
        )
    return markdown_table(header, rows)


def format_ablation(summary) -> str:
    """lesson 4's table: per shift and recipe, mean val and test accuracy, the gap with its
    95% interval over seeds, and the share of the baseline's gap closed."""

    def ci(e, name):
        if e["n"] < 2:
            return f"{e[name]:.3f}"
        return f"{e[name]:.3f} [{e[name + '_low']:.3f}, {e[name + '_high']:.3f}]"

    rows = [
        (
            e["shift"],
            e["recipe"],
            e["n"],
            ci(e, "val"),
            ci(e, "test"),
            ci(e, "gap"),
            "" if e["recipe"] == "baseline" else f"{e['gap_closed']:.0%}",
            f"{e['test_auc']:.3f}",
        )
        for e in summary
    ]
    header = [
        "shift",
        "recipe",
        "seeds",
        "val acc",
        "test acc",
        "gap (val - test)",
        "gap closed",
        "test AUC",
    ]
    return markdown_table(header, rows, align=["l", "l"] + ["r"] * 6)
