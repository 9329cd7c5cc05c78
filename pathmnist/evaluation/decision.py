"""Decisions from evidence: lesson 3's rule for which model goes to the test, whether a
run converged, and the paired verdict between two recipes trained on the same seeds.

`compare` gives the accuracy difference of two models on the same images and the exact
McNemar test of it (`stats.mcnemar`); `carried` keeps the tuned model only if it beats the
baseline on validation by more than the noise, otherwise the baseline, the simpler choice.
`converged` is the course's convergence rule for one run's history. `paired` compares two
recipes seed by seed (a t interval of the per-seed differences) and, pooled over seeds,
image by image (exact McNemar); `verdict` turns it into the only sentences the evidence
allows: "higher" or "lower" when the paired interval excludes 0, else "not established".

Tested in tests/test_decision.py (the rule on hand-made histories, the paired interval
against scipy.stats.ttest_rel's confidence interval, the verdict's words).
"""

import math

import numpy as np

from pathmnist.errors import PathMNISTError
from pathmnist.evaluation import calibration, stats


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


def last_decay(epochs: int, step_size: int) -> int:
    """The last epoch after which StepLR(step_size) lowers the rate within `epochs` epochs
    (0: no decay falls inside the budget). Decays follow epochs step_size, 2 step_size, ...;
    one after the final epoch changes nothing the run uses."""
    return step_size * ((epochs - 1) // step_size)


def converged(val_accuracies, best_epoch: int, epochs: int, step_size: int, n_val: int) -> bool:
    """The course's rule: a run converged when it trained through its budget's last StepLR
    decay and its best epoch is not its last, or when its last three validation accuracies
    lie within one Wilson half-width (95%, n_val images) of its best.

    `val_accuracies`: one per epoch run; `best_epoch`: the 1-based epoch whose weights were
    kept; `epochs`: the planned budget (a run stopped early may have fewer rows)."""
    acc = [float(a) for a in val_accuracies]
    if not acc or not 1 <= best_epoch <= len(acc):
        raise PathMNISTError(
            f"converged got {len(acc)} epochs and best epoch {best_epoch}; pass the run's "
            "validation accuracies and a best epoch among them."
        )
    through = len(acc) > last_decay(epochs, step_size)  # At least one epoch after it.
    if through and best_epoch < len(acc):
        return True
    if len(acc) < 3:
        return False
    best = max(acc)
    low, high = stats.wilson_interval(round(best * n_val), n_val)
    return all(best - a <= (high - low) / 2 for a in acc[-3:])


def paired(a: list[dict], b: list[dict], metric: str = "test_accuracy") -> dict:
    """Recipe a against recipe b on the same seeds (rows of ablation results, one per seed):
    the per-seed differences a - b with their mean and 95% t interval, and the exact
    McNemar test pooled over seeds on the same test images ("test_correct" bit strings).
    Seeds present in only one of them are left out."""
    by_seed = {r["seed"]: r for r in b}
    pairs = [(r, by_seed[r["seed"]]) for r in a if r["seed"] in by_seed]
    if not pairs:
        raise PathMNISTError("paired needs rows of both recipes on at least one common seed.")
    diffs = [x[metric] - y[metric] for x, y in pairs]
    mean, low, high = stats.mean_interval(diffs)
    out = {"n": len(pairs), "diff": mean, "low": low, "high": high, "metric": metric}
    if all("test_correct" in x for x, _ in pairs) and metric == "test_accuracy":
        bits = [np.array([c == "1" for c in r["test_correct"]]) for pair in pairs for r in pair]
        test = stats.mcnemar(np.concatenate(bits[0::2]), np.concatenate(bits[1::2]))
        out.update(only_a=test.b, only_b=test.c, mcnemar_p=test.p_value)
    return out


def established(comparison: dict) -> bool:
    """True when the paired interval excludes 0 (needs at least two seeds)."""
    low, high = comparison["low"], comparison["high"]
    return not (math.isnan(low) or math.isnan(high)) and (low > 0 or high < 0)


def verdict(name_a: str, name_b: str, comparison: dict, what: str = "test accuracy") -> str:
    """One sentence the paired evidence allows: "a's test accuracy is higher than b's by d
    [lo, hi] over N seeds" only when the interval excludes 0, else "not established"."""
    c = comparison
    d = f"{c['diff']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"
    if established(c):
        word = "higher" if c["diff"] > 0 else "lower"
        return f"{name_a}'s {what} is {word} than {name_b}'s: difference {d} over {c['n']} seeds."
    return (
        f"{name_a} against {name_b} on {what}: not established with {c['n']} seeds "
        f"(difference {d})."
    )


def ece_change(labels, logits, temperature, n_bins=15, n_resamples=1000, seed=0) -> dict:
    """The test ECE before and after dividing the logits by `temperature`, and a 95%
    percentile bootstrap interval of the change (after - before), paired: both ECEs are
    measured on the same resampled images (resample i: numpy.random.default_rng(seed)'s
    i-th integers(0, N, N)). A change is established only when the interval excludes 0."""
    y = np.asarray(labels).reshape(-1)
    z = np.asarray(logits, dtype=np.float64)
    before = _softmax(z)
    after = _softmax(calibration.apply_temperature(z, temperature))
    ece = calibration.expected_calibration_error
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_resamples):
        i = rng.integers(0, len(y), len(y))
        diffs.append(ece(y[i], after[i], n_bins) - ece(y[i], before[i], n_bins))
    low, high = np.percentile(diffs, [2.5, 97.5])
    e0, e1 = ece(y, before, n_bins), ece(y, after, n_bins)
    return {"before": e0, "after": e1, "diff": e1 - e0, "low": float(low), "high": float(high)}


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
