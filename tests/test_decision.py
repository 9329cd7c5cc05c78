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
    table = [
        [np.sum(right_a & right_b), np.sum(right_a & ~right_b)],
        [np.sum(~right_a & right_b), np.sum(~right_a & ~right_b)],
    ]
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


# The convergence rule, on hand-made curves: 12 epochs, StepLR(5) (decays after 5 and 10),
# 400 validation images (a Wilson half-width of about 0.03 near 0.9).
@pytest.mark.parametrize(
    "acc, best, want",
    [
        ([0.5] * 10 + [0.9, 0.89], 11, True),  # through the last decay, best not last
        ([0.5] * 9 + [0.88, 0.89, 0.9], 12, True),  # best last, but within a half-width
        ([0.5] * 9 + [0.6, 0.7, 0.9], 12, False),  # still climbing at the end
        ([0.5, 0.6, 0.7, 0.9, 0.6, 0.5], 4, False),  # stopped at 6, before the last decay
        ([0.9, 0.9, 0.9], 1, True),  # stopped early, but flat within a half-width
        ([0.4, 0.9], 2, False),  # too short to tell
    ],
)
def test_converged_rule(acc, best, want):
    assert decision.converged(acc, best, 12, 5, 400) is want


def test_last_decay_is_the_last_one_inside_the_budget():
    """StepLR(5) over 12 epochs decays after 5 and 10; over 10 epochs only the one after 5
    is used (the decay after epoch 10 changes nothing); 3 epochs have none."""
    assert [decision.last_decay(e, 5) for e in (12, 10, 11, 3)] == [10, 5, 10, 0]


def test_converged_refuses_a_best_epoch_outside_the_curve():
    with pytest.raises(PathMNISTError, match="best epoch"):
        decision.converged([0.5, 0.6], 3, 12, 5, 400)


def _rows(values, seeds=None, bits=None):
    seeds = seeds or list(range(len(values)))
    return [
        {"seed": s, "test_accuracy": v, **({"test_correct": bits[i]} if bits else {})}
        for i, (s, v) in enumerate(zip(seeds, values, strict=True))
    ]


def test_paired_interval_equals_scipys_paired_t_test():
    """The per-seed difference's mean and 95% interval are scipy.stats.ttest_rel's; seeds
    only one recipe has are left out; the McNemar test pools both seeds' images."""
    from scipy import stats as sps

    a, b = [0.81, 0.84, 0.80, 0.86, 0.83], [0.80, 0.81, 0.80, 0.82, 0.81]
    got = decision.paired(_rows(a), _rows([*b, 0.5], seeds=[0, 1, 2, 3, 4, 9]))
    ci = sps.ttest_rel(a, b).confidence_interval(0.95)
    assert got["n"] == 5 and got["diff"] == pytest.approx(np.mean(np.subtract(a, b)))
    assert (got["low"], got["high"]) == pytest.approx((ci.low, ci.high))
    pooled = decision.paired(
        _rows([0.5, 0.5], bits=["1100", "1010"]), _rows([0.5, 0.5], bits=["1000", "0011"])
    )
    oracle = sm_mcnemar([[2, 2], [1, 3]], exact=True)
    assert (pooled["only_a"], pooled["only_b"]) == (2, 1)
    assert pooled["mcnemar_p"] == pytest.approx(oracle.pvalue)


def test_verdict_ranks_only_when_the_interval_excludes_zero():
    """ "higher"/"lower" only when the paired interval excludes 0; else "not established"
    with the number of seeds and the interval; one seed has no interval."""
    up = {"n": 5, "diff": 0.02, "low": 0.01, "high": 0.03}
    down = {"n": 5, "diff": -0.02, "low": -0.03, "high": -0.01}
    flat = {"n": 5, "diff": 0.02, "low": -0.01, "high": 0.05}
    one = {"n": 1, "diff": 0.02, "low": float("nan"), "high": float("nan")}
    assert "is higher than B's" in decision.verdict("A", "B", up)
    assert "is lower than B's" in decision.verdict("A", "B", down)
    for c in (flat, one):
        text = decision.verdict("A", "B", c)
        assert "not established with" in text and "higher" not in text and "lower" not in text
    assert "+0.020 [-0.010, +0.050]" in decision.verdict("A", "B", flat)


def test_ece_change_is_a_paired_bootstrap_of_the_ece():
    """ece_change's ECEs are calibration's; its interval is the percentiles of the same
    resamples done by hand; temperature 1 changes nothing (a zero-width interval at 0)."""
    from pathmnist.evaluation import calibration

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    z = rng.normal(size=(200, 4)) * 2 + 3 * np.eye(4)[y]
    got = decision.ece_change(y, z, 1.7, n_resamples=200, seed=3)
    p0 = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    p1 = np.exp(z / 1.7) / np.exp(z / 1.7).sum(1, keepdims=True)
    ece = calibration.expected_calibration_error
    assert got["before"] == pytest.approx(ece(y, p0)) and got["after"] == pytest.approx(ece(y, p1))
    r = np.random.default_rng(3)
    diffs = []
    for _ in range(200):
        i = r.integers(0, 200, 200)
        diffs.append(ece(y[i], p1[i]) - ece(y[i], p0[i]))
    assert (got["low"], got["high"]) == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])))
    same = decision.ece_change(y, z, 1.0, n_resamples=50)
    assert same["diff"] == pytest.approx(0) and same["low"] == pytest.approx(0, abs=1e-12)
