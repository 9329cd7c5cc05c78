"""evaluation.decision: compare against statsmodels' exact McNemar, and lesson 3's rule."""

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from test_run_report import make_evaluation

from pathmnist.errors import PathMNISTError
from pathmnist.evaluation import decision


def test_compare_equals_statsmodels_exact_mcnemar():
    """compare's counts and p-value are statsmodels' exact McNemar test on the 2x2 table of
    right/wrong; the sentence says the difference and whether it is within the noise."""
    labels = np.arange(60) % 3
    a, b = make_evaluation(0, labels=labels), make_evaluation(1, labels=labels)
    got = decision.compare("A", a, "B", b)
    right_a, right_b = a.probs.argmax(1) == labels, b.probs.argmax(1) == labels
    table = [[np.sum(right_a & right_b), np.sum(right_a & ~right_b)],
             [np.sum(~right_a & right_b), np.sum(~right_a & ~right_b)]]  # fmt: skip
    oracle = sm_mcnemar(table, exact=True)
    assert (got["only_a_right"], got["only_b_right"]) == (table[0][1], table[1][0])
    assert got["mcnemar_p"] == pytest.approx(oracle.pvalue, rel=1e-9)
    assert got["accuracy_difference"] == pytest.approx(a.accuracy - b.accuracy)
    assert got["sentence"].startswith("A minus B: ") and "at the 5% level." in got["sentence"]


def test_compare_needs_the_same_images():
    """Two evaluations of different images cannot be compared: a PathMNISTError."""
    with pytest.raises(PathMNISTError, match="same images"):
        decision.compare("A", make_evaluation(0, n=30), "B", make_evaluation(1, n=33))


def test_carried_keeps_the_baseline_unless_tuned_is_better_beyond_the_noise():
    """The tuned model is carried only when it is ahead on validation with McNemar p below
    alpha; ahead within the noise, or behind, carries the baseline; no baseline, tuned."""
    assert decision.carried(None) == "tuned"
    assert decision.carried({"accuracy_difference": 0.02, "mcnemar_p": 0.01}) == "tuned"
    assert decision.carried({"accuracy_difference": 0.02, "mcnemar_p": 0.2}) == "baseline"
    assert decision.carried({"accuracy_difference": -0.02, "mcnemar_p": 0.01}) == "baseline"
    assert decision.carried({"accuracy_difference": 0.02, "mcnemar_p": 0.04}, alpha=0.01) == (
        "baseline"
    )
