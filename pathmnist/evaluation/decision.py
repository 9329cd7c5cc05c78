"""Lesson 3's decision: compare two models on the same images, and the rule, fixed
before the test split is opened, that says which one is carried to the test.

`compare` gives the accuracy difference and the exact McNemar test of it (`stats.mcnemar`);
`carried` keeps the tuned model only if it beats the baseline on validation by more than
the noise, otherwise the baseline, the simpler choice.

Tested in tests/test_decision.py.
"""

from pathmnist.errors import PathMNISTError
from pathmnist.evaluation import stats


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
