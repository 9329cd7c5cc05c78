"""The sentences the chapters conclude with, generated from the run files.

Every comparison here goes through `evaluation.decision`: a sentence says "higher" or
"lower" only when the paired interval over seeds excludes 0 (`decision.verdict`), and
otherwise "not established with N seeds (difference d [lo, hi])"; "gap closed" is said
only where the baseline's own gap interval excludes 0; a study where fewer than 80% of
runs converged (`decision.converged`) says so and recommends nothing. The early-stopping
replay re-runs `EarlyStopping` on a recorded run's validation losses: on the CPU a run
is deterministic, so the epochs before a stop are exactly those of the full run.

Tested in tests/test_verdicts.py (hand-made rows) and tests/test_results.py (every
sentence the chapters print from docs/results checked against the paired intervals).
"""

from pathmnist.config import MONITORS
from pathmnist.errors import PathMNISTError
from pathmnist.evaluation import decision, stats
from pathmnist.report.tables import trial_label
from pathmnist.training.early_stopping import EarlyStopping

CONVERGED_ENOUGH = 0.8  # Below this share of converged runs a study recommends nothing.


def _runs(rows, recipe, shift=None):
    return [r for r in rows if r["recipe"] == recipe and (shift is None or r["shift"] == shift)]


def convergence(rows) -> str:
    """How many runs (recipe x seed) converged, and what that allows."""
    runs = {(r["recipe"], r["seed"]): r for r in rows}
    done = sum(bool(r["converged"]) for r in runs.values())
    share = done / len(runs)
    text = f"{done} of {len(runs)} runs converged ({share:.0%}; best epoch not the last after "
    text += "the last decay, or the last three validation accuracies within one Wilson "
    text += "half-width of the best)."
    if share < CONVERGED_ENOUGH:
        text += " Fewer than 80% converged, so this study recommends nothing."
    return text


def enough_converged(rows) -> bool:
    runs = {(r["recipe"], r["seed"]): bool(r["converged"]) for r in rows}
    return sum(runs.values()) >= CONVERGED_ENOUGH * len(runs)


def against_baseline(summary, shift) -> list[str]:
    """One line per recipe of `shift`: its test and val accuracy against the baseline's on
    the same seeds, and the gap closed only where the baseline's gap is established."""
    base = next((e for e in summary if e["shift"] == shift and e["recipe"] == "baseline"), None)
    if base is None:
        raise PathMNISTError(f"the {shift} shift has no baseline runs to compare with.")
    lines = [
        f"Baseline ({shift} shift): val {base['val']:.3f}, test {base['test']:.3f}, gap "
        f"{base['gap']:+.3f} [{base['gap_low']:+.3f}, {base['gap_high']:+.3f}] over "
        f"{base['n']} seeds"
        + (
            "."
            if decision.established(_interval(base, "gap"))
            else ": not established, so no recipe can be said to close it."
        )
    ]
    for e in summary:
        if e["shift"] != shift or e is base:
            continue
        vs = e["vs_baseline"]
        line = decision.verdict(e["recipe"], "the baseline", vs["test_accuracy"])
        line += " On validation: " + decision.verdict(
            e["recipe"], "the baseline", vs["val_accuracy"], "validation accuracy"
        )
        if "mcnemar_p" in vs["test_accuracy"]:
            c = vs["test_accuracy"]
            line += (
                f" Pooled over seeds, {c['only_a']} test images only {e['recipe']} got right and "
                f"{c['only_b']} only the baseline (exact McNemar p = {c['mcnemar_p']:.2g})."
            )
        g = e["gap_closed"]
        if g is not None and g["low"] > 0:
            line += (
                f" It closes {g['share']:.0%} [{g['low']:.0%}, {g['high']:.0%}] of the "
                "baseline's gap."
            )
        elif g is not None and g["high"] < 0:
            line += f" It widens the baseline's gap by {-g['share']:.0%} [{-g['high']:.0%}, "
            line += f"{-g['low']:.0%}]."
        elif g is not None:
            line += (
                f" The share of the baseline's gap it closes is not established "
                f"({g['share']:.0%} [{g['low']:.0%}, {g['high']:.0%}])."
            )
        lines.append(line)
    return lines


def _interval(entry, name):
    return {"low": entry[f"{name}_low"], "high": entry[f"{name}_high"]}


def headline(summary, rows, shift="stain") -> str:
    """The measured result in one plain sentence: which recipes beat the baseline's test
    accuracy on `shift` with a paired interval that excludes 0."""
    if not enough_converged(rows):
        return "Too few runs converged to conclude anything: " + convergence(rows)
    entries = [e for e in summary if e["shift"] == shift and e["vs_baseline"]]
    up = [e["recipe"] for e in entries if _up(e)]
    down = [e["recipe"] for e in entries if _down(e)]
    n = min(e["vs_baseline"]["test_accuracy"]["n"] for e in entries)
    parts = []
    if up:
        parts.append(f"{', '.join(up)} raised the test accuracy above the baseline's")
    if down:
        parts.append(f"{', '.join(down)} lowered it")
    rest = [e["recipe"] for e in entries if not (_up(e) or _down(e))]
    if rest:
        parts.append(f"for {', '.join(rest)} a difference is not established")
    return (
        f"On the {shift}-shifted test split, "
        + "; ".join(parts)
        + f" (paired over {n} seeds, 95% t intervals)."
    )


def _up(e):
    c = e["vs_baseline"]["test_accuracy"]
    return decision.established(c) and c["diff"] > 0


def _down(e):
    c = e["vs_baseline"]["test_accuracy"]
    return decision.established(c) and c["diff"] < 0


def sweep_choice(rows, recipes, shift="stain") -> tuple[str, list[str]]:
    """The jitter strength chosen on validation among `recipes` (rows of the same seeds):
    the highest mean validation accuracy; and one line per recipe against the choice."""
    rows = [r for r in rows if r["shift"] == shift]
    means = {r: stats.mean_interval([x["val_accuracy"] for x in _runs(rows, r)]) for r in recipes}
    chosen = max(recipes, key=lambda r: means[r][0])
    lines = []
    for r in recipes:
        m, lo, hi = means[r]
        line = f"{r}: val {m:.3f} [{lo:.3f}, {hi:.3f}]"
        if r != chosen:
            c = decision.paired(_runs(rows, r), _runs(rows, chosen), "val_accuracy")
            line += "; " + decision.verdict(r, chosen, c, "validation accuracy")
        lines.append(line)
    return chosen, lines


def patience_replay(rows, patience=3, monitor="val_loss", shift="stain") -> list[dict]:
    """For each run of `shift`: where EarlyStopping(patience) on its recorded validation
    losses would have stopped, the epoch whose weights it would keep and their validation
    accuracy, against the whole run's best epoch and accuracy."""
    out = []
    for r in (r for r in rows if r["shift"] == shift):
        stopper = EarlyStopping(patience, mode=MONITORS[monitor], restore_best_weights=False)
        stop = len(r["val_losses"])
        for epoch, value in enumerate(r["val_losses"], 1):
            if stopper.step(value):
                stop = epoch
                break
        acc = r["val_accuracies"]
        out.append(
            {
                "recipe": r["recipe"],
                "seed": r["seed"],
                "stopped_at": stop,
                "kept_epoch": stopper.best_epoch,
                "kept_val": acc[stopper.best_epoch - 1],
                "full_best_epoch": r["best_epoch"],
                "full_val": acc[r["best_epoch"] - 1],
                "epochs": len(acc),
            }
        )
    return out


def ranking(rows, names) -> list[str]:
    """Chapter 8: the top trial against each other trial on the same seeds (validation
    accuracy at each trial's best epoch), in `names` order (the ranking's)."""

    def trial(params):
        return [{**r, "val_accuracy": r["val_acc"]} for r in rows if r["params"] == params]

    best = names[0]
    lines = []
    for other in names[1:]:
        c = decision.paired(trial(best), trial(other), "val_accuracy")
        lines.append(
            decision.verdict(
                f"`{trial_label(best)}`", f"`{trial_label(other)}`", c, "validation accuracy"
            )
        )
    return lines


def calibration(metrics: dict) -> str:
    """Chapter 13: the temperature's effect on test ECE, with its paired bootstrap interval."""
    lo, hi = metrics["ece_change_ci95"]
    d = metrics["ece_after_temperature"] - metrics["ece"]
    text = (
        f"Temperature {metrics['temperature']:.3f} (fitted on validation) changes the test ECE "
        f"from {metrics['ece']:.4f} to {metrics['ece_after_temperature']:.4f}: a change of "
        f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}] (95% paired bootstrap over test images)"
    )
    if lo > 0 or hi < 0:
        return text + f", so the calibration error is {'lower' if d < 0 else 'higher'}."
    return text + ": not established on these images."


def lesson3(metrics: dict) -> str:
    """Chapter 9: which model lesson 3 carried, why, and its val and test accuracy."""
    cmp = metrics.get("val_tuned_vs_baseline")
    why = (
        f" (tuned minus baseline on validation {cmp['accuracy_difference']:+.4f}, exact McNemar "
        f"p = {cmp['mcnemar_p']:.3g}: {'beyond' if cmp['mcnemar_p'] < 0.05 else 'within'} "
        "the noise at the 5% level)"
        if cmp
        else ""
    )
    (vl, vh), (tl, th) = metrics["val"]["accuracy_ci95"], metrics["test"]["accuracy_ci95"]
    return (
        f"Lesson 3 carried the {metrics['carried']} model{why}; it scores "
        f"{metrics['val']['accuracy']:.4f} [{vl:.4f}, {vh:.4f}] on validation and "
        f"{metrics['test']['accuracy']:.4f} [{tl:.4f}, {th:.4f}] on the shifted test split."
    )
