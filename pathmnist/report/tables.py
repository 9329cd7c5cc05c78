"""Every Markdown table and `format_*` text the course prints or writes: one
`markdown_table` helper, and the formatters of a run's metrics, a search's ranking,
successive halving's rounds and an ablation's summary.

Tested in tests/test_tables.py.
"""

import dataclasses
from pathlib import Path

from pathmnist.config import TrainConfig
from pathmnist.evaluation import metrics, stats


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


def _field_order(keys) -> list[str]:
    """Parameter names in TrainConfig's field order (unknown names last, sorted)."""
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    return sorted(keys, key=lambda k: (fields.index(k) if k in fields else len(fields), k))


def trial_label(params: dict) -> str:
    """The one name of a trial everywhere in the course: its parameters in TrainConfig's
    field order, e.g. "optimizer=adam, lr=0.001, batch_size=64"."""
    return ", ".join(f"{k}={params[k]}" for k in _field_order(params))


def format_results(summary) -> str:
    """A Markdown table of ranked trials (`grid.summarize`): parameters, epochs, seeds,
    mean val accuracy with its 95% interval over seeds, mean val loss at the best epoch."""
    keys = _field_order({k for s in summary for k in s["params"]})
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


def _ci(mean, low, high, n=2, digits=3) -> str:
    """ "m [lo, hi]", or "m" alone with one seed (no interval)."""
    if n < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _signed(c) -> str:
    return f"{c['diff']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"


def format_ablation(summary) -> str:
    """Lesson 4's table: per shift and recipe, seeds and runs converged, mean val and test
    accuracy with 95% t intervals over seeds, the paired test-accuracy difference to the
    baseline (t interval over seeds, pooled exact McNemar p), the gap (val - test), and the
    share of the baseline's gap closed where the baseline's gap is established."""
    rows = []
    for e in summary:
        vs = e.get("vs_baseline")
        closed = e.get("gap_closed")
        mc = vs["test_accuracy"].get("mcnemar_p") if vs else None
        rows.append(
            (
                e["shift"],
                e["recipe"],
                f"{e['n']} ({e['converged']})",
                _ci(e["val"], e["val_low"], e["val_high"], e["n"]),
                _ci(e["test"], e["test_low"], e["test_high"], e["n"]),
                _signed(vs["test_accuracy"]) if vs else "",
                "" if mc is None else f"{mc:.2g}",
                _ci(e["gap"], e["gap_low"], e["gap_high"], e["n"]),
                f"{closed['share']:.0%} [{closed['low']:.0%}, {closed['high']:.0%}]"
                if closed
                else "",
            )
        )
    header = [
        "shift",
        "recipe",
        "seeds (converged)",
        "val acc",
        "test acc",
        "test acc - baseline (paired)",
        "McNemar p",
        "gap (val - test)",
        "gap closed",
    ]
    return markdown_table(header, rows, align=["l", "l"] + ["r"] * 7)


def format_rejected(
    name, checkpoint, config, carried_config, history, evaluations, figures, out_dir
) -> str:
    """Lesson 3's section for the model not carried: where it is, the settings in which it
    differs from the carried one, its best epoch, its val and test metrics and its curves
    (`figures`: {title: path}, linked relative to `out_dir`)."""
    mine, theirs = config.to_dict(), carried_config.to_dict()
    diff = [(k, f"`{mine[k]}`", f"`{theirs[k]}`") for k in mine if mine[k] != theirs[k]]
    lines = [
        f"## The rejected model: {name}",
        "",
        f"Not carried (`{checkpoint}`); shown for comparison only. Nothing above this "
        "section describes it.",
        "",
    ]
    if diff:
        lines += [markdown_table(["setting", name, "carried"], diff), ""]
    if history is not None and history.rows:
        lines += [f"Best epoch {history.best_epoch} of {len(history.rows)}.", ""]
    rows = [
        (s, f"{ev.accuracy:.4f}", _interval(ev), f"{ev.macro_auc:.4f}")
        for s, ev in evaluations.items()
    ]
    lines += [markdown_table(["split", "accuracy", "95% interval", "macro AUC"], rows), ""]
    for title, path in figures.items():
        rel = Path(path).relative_to(out_dir).as_posix()
        lines += [f"![{name}: {title}]({rel})", ""]
    return "\n".join(lines).rstrip()


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


def _interval(ev) -> str:
    n = len(ev.labels)
    low, high = stats.wilson_interval(round(ev.accuracy * n), n)
    return f"[{low:.4f}, {high:.4f}]"
