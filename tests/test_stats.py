"""Statistics against statsmodels (Wilson interval, exact McNemar), scipy.stats (norm.ppf,
t.ppf, t.interval, bootstrap) and sklearn.metrics.roc_auc_score on the same bootstrap
resamples; closed-form t quantiles for df 1 and 2; hypothesis properties of the
intervals; a coverage check on simulated scores; bad inputs."""

import math

import numpy as np
import pytest
import scipy.stats
import sklearn.metrics as skm
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.proportion import proportion_confint

from pathmnist.errors import PathMNISTError
from pathmnist.evaluation.stats import (
    bootstrap_macro_auc,
    mcnemar,
    mean_interval,
    normal_quantile,
    t_quantile,
    wilson_interval,
)

# Quantile grid: both tails, the centre and the usual confidence levels. Points within
# 1e-6 of 1/2 are left out of the scipy comparison: scipy's t.ppf loses digits there
# (relative error 9e-9 at df=5, p=0.5-1e-16); the closed forms below cover them.
P_GRID = [1e-300, 1e-100, 1e-12, 1e-6, 1e-3, 0.005, 0.025, 0.05, 0.1, 0.2, 0.25, 0.3, 0.45]
P_GRID = P_GRID + [0.499, 0.5] + [1 - p for p in P_GRID[3:]]
DFS = [*range(1, 31), 40, 50, 60, 99, 100, 101, 120, 200, 500, 999, 1000, 0.5, 2.5, 1e4]
CONFIDENCES = st.floats(0.01, 0.999)


def test_normal_quantile_matches_scipy():
    """normal_quantile equals scipy.stats.norm.ppf to 1e-14 relative, down to p = 1e-300
    (subnormal p, below 2.2e-308, carry too few bits for that)."""
    for p in [*P_GRID, 2.3e-308, 0.5 - 1e-16, 0.5 + 1e-12, 1 - 1e-16]:
        assert normal_quantile(p) == pytest.approx(scipy.stats.norm.ppf(p), rel=1e-14, abs=0)


def test_t_quantile_matches_scipy():
    """t_quantile equals scipy.stats.t.ppf to 1e-9 relative for df 1..30 and up to 1e4,
    fractional df included (measured: below 1e-13), over both tails and the centre."""
    for df in DFS:
        for p in P_GRID:
            want = scipy.stats.t.ppf(p, df)
            if abs(want) > 1e90:
                continue  # scipy's far tails are off: 1e153 for 1e294 at df = 0.5, p = 1e-148.
            assert t_quantile(p, df) == pytest.approx(want, rel=1e-9, abs=0), (p, df)


@pytest.mark.parametrize("p", [1e-300, 1e-10, 0.01, 0.3, 0.5 - 2**-53, 0.5 - 1e-12, 0.75])
def test_t_quantile_closed_forms(p):
    """df = 1 is Cauchy, t = tan(pi (p - 1/2)); df = 2 has t = (2p - 1) / sqrt(2p(1 - p)).
    Both hold to 1e-13 relative, also next to p = 1/2 where scipy loses digits."""
    if p > 0.25:  # p - 1/2 is exact here, so the closed form is accurate.
        assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-13)
    else:  # tan(pi (p - 1/2)) = -1 / tan(pi p), accurate for small p.
        assert t_quantile(p, 1) == pytest.approx(-1 / math.tan(math.pi * p), rel=1e-13)
    want = (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    assert t_quantile(p, 2) == pytest.approx(want, rel=1e-13)


def test_t_quantile_symmetry_and_large_df():
    """t(1 - p) = -t(p) exactly, t(1/2) = 0, and at df = 1e6 the Cornish-Fisher expansion
    z + (z^3 + z) / (4 df) + (5z^5 + 16z^3 + 3z) / (96 df^2) (A&S 26.7.5; next term
    O(df^-3)) holds to 1e-10 relative."""
    for p in (1e-8, 0.025, 0.3):
        assert t_quantile(1 - p, 7) == -t_quantile(1 - (1 - p), 7)
    assert t_quantile(0.5, 3) == 0.0
    for p in (1e-6, 0.025, 0.3):
        z, df = normal_quantile(p), 1e6
        want = z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        assert t_quantile(p, df) == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("n", [1, 2, 7, 100, 7180])
def test_wilson_matches_statsmodels(n):
    """wilson_interval equals statsmodels' proportion_confint(method="wilson") to 1e-9,
    at k = 0, k = n and in between, for several confidence levels."""
    for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
        for confidence in (0.5, 0.9, 0.95, 0.99, 0.999999):
            want = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
            got = wilson_interval(k, n, confidence)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("k", "n", "want"),
    [
        (81, 263, (0.2553, 0.3662)),
        (15, 148, (0.0624, 0.1605)),
        (0, 20, (0.0, 0.1611)),
        (1, 29, (0.0061, 0.1718)),
    ],
)
def test_wilson_golden_table(k, n, want):
    """Newcombe (1998), "Two-sided confidence intervals for the single proportion",
    Table II, method 3 (Wilson score, no continuity correction), to its 4 decimals."""
    assert tuple(round(x, 4) for x in wilson_interval(k, n)) == want


@settings(deadline=None, max_examples=60)
@given(n=st.integers(1, 10_000), frac=st.floats(0, 1), confidence=CONFIDENCES)
@example(n=1, frac=0.0, confidence=0.95)
@example(n=1, frac=1.0, confidence=0.999)
def test_wilson_properties(n, frac, confidence):
    """The interval holds k/n, stays in [0, 1], narrows when n doubles at the same k/n,
    and a higher confidence gives an interval containing the lower one's."""
    k = round(frac * n)
    low, high = wilson_interval(k, n, confidence)
    assert 0.0 <= low <= k / n <= high <= 1.0
    low2, high2 = wilson_interval(2 * k, 2 * n, confidence)
    assert high2 - low2 < high - low
    wide = wilson_interval(k, n, min(0.9999, confidence + 0.05))
    assert wide[0] <= low + 1e-15 and high - 1e-15 <= wide[1]


def _table(a, b):
    """statsmodels' 2x2 layout: rows = model A right/wrong, columns = model B right/wrong."""
    return [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]


@pytest.mark.parametrize("n", [1, 5, 30, 200, 2000])
def test_mcnemar_matches_statsmodels(n):
    """p-value equals statsmodels' mcnemar(exact=True) to 1e-12 relative; b and c are the
    off-diagonal counts."""
    rng = np.random.default_rng(n)
    for _ in range(10):
        a, b = rng.random(n) < 0.8, rng.random(n) < rng.random()
        result = mcnemar(a, b)
        want = sm_mcnemar(_table(a, b), exact=True)
        assert (result.b, result.c) == (np.sum(a & ~b), np.sum(~a & b))
        assert result.p_value == pytest.approx(want.pvalue, rel=1e-12, abs=1e-300)


def test_mcnemar_golden_values():
    """Hand values: b = c = 0 gives p = 1; b = 0, c = 5 gives 2 / 2**5 = 0.0625;
    b = 1, c = 9 gives 2 * 11 / 1024; 0/1 ints and tensors count as booleans."""
    same = [True, False, True]
    assert mcnemar(same, same) == (0, 0, 1.0)
    assert mcnemar([0] * 5, [1] * 5) == (0, 5, 0.0625)
    a = torch.tensor([True] + [False] * 9)
    assert mcnemar(a, ~a) == (1, 9, 22 / 1024)


@settings(deadline=None, max_examples=40)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60))
def test_mcnemar_properties(pairs):
    """p in (0, 1], swapping the models swaps b and c and keeps p."""
    a, b = np.array(pairs).T
    forward, backward = mcnemar(a, b), mcnemar(b, a)
    assert 0.0 < forward.p_value <= 1.0
    assert (backward.b, backward.c, backward.p_value) == (forward.c, forward.b, forward.p_value)


def _scores(n, c, seed, signal=1.0):
    """Labels with every class equally often and softmax probabilities that favour the
    true class by `signal`."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % c
    rng.shuffle(labels)
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), labels] += signal
    probs = np.exp(logits)
    return labels, probs / probs.sum(axis=1, keepdims=True)


def test_bootstrap_matches_scipy():
    """With every class frequent (no resample skipped), the interval equals
    scipy.stats.bootstrap(method="percentile", batch=1) on the same seed to 1e-12."""
    labels, probs = _scores(60, 3, seed=1)
    got = bootstrap_macro_auc(labels, probs, n_resamples=200, confidence=0.9, seed=3)
    want = scipy.stats.bootstrap(
        (np.arange(60),),
        lambda i: skm.roc_auc_score(labels[i], probs[i], multi_class="ovr"),
        n_resamples=200,
        batch=1,
        vectorized=False,
        confidence_level=0.9,
        method="percentile",
        rng=np.random.default_rng(3),
    ).confidence_interval
    assert got == pytest.approx((want.low, want.high), rel=1e-12)


def test_bootstrap_skips_resamples_missing_a_class():
    """A class with 2 of 12 images is missing from some resamples: those are skipped, and
    the interval equals the percentiles of sklearn's AUC over the same kept resamples."""
    labels = np.array([0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2])
    _, probs = _scores(12, 3, seed=5)
    rng, kept = np.random.default_rng(7), []
    for _ in range(100):
        i = rng.integers(0, 12, 12)
        if len(set(labels[i])) == 3:
            kept.append(skm.roc_auc_score(labels[i], probs[i], multi_class="ovr"))
    assert 50 <= len(kept) < 100  # Some, but not most, resamples were skipped.
    got = bootstrap_macro_auc(labels, probs, n_resamples=100, seed=7)
    assert got == pytest.approx(tuple(np.percentile(kept, [2.5, 97.5])), rel=1e-12)


@settings(deadline=None, max_examples=15)
@given(seed=st.integers(0, 1000), confidence=st.floats(0.5, 0.99))
def test_bootstrap_properties(seed, confidence):
    """low <= high inside [0, 1], and the same seed at a higher confidence contains it.
    (A percentile interval need not contain the point estimate, so that is not asserted.)"""
    labels, probs = _scores(30, 3, seed=seed, signal=0.5)
    low, high = bootstrap_macro_auc(labels, probs, 50, confidence, seed)
    assert 0.0 <= low <= high <= 1.0
    wide = bootstrap_macro_auc(labels, probs, 50, min(0.999, confidence + 0.05), seed)
    assert wide[0] <= low and high <= wide[1]


def test_bootstrap_coverage():
    """Binary scores N(1, 1) against N(0, 1) have AUC Phi(1/sqrt 2) = 0.760; over 80
    simulated sets of 80 images the 90% interval covers it in 80-97% of them (the
    percentile bootstrap undercovers a little at this size)."""
    true_auc = scipy.stats.norm.cdf(1 / math.sqrt(2))
    hits = 0
    for seed in range(80):
        rng = np.random.default_rng(seed)
        labels = np.repeat([0, 1], 40)
        s = 1 / (1 + np.exp(-(rng.normal(size=80) + labels)))
        low, high = bootstrap_macro_auc(labels, np.stack([1 - s, s], 1), 150, 0.9, seed)
        hits += low <= true_auc <= high
    assert 0.80 <= hits / 80 <= 0.97


def test_mean_interval_matches_scipy():
    """mean and interval equal scipy.stats.t.interval(conf, n - 1, mean, sem) to 1e-9."""
    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 10, 50):
        values = list(rng.normal(0.8, 0.02, n))
        for confidence in (0.5, 0.9, 0.95, 0.99):
            mean, low, high = mean_interval(values, confidence)
            a = np.asarray(values)
            want = scipy.stats.t.interval(confidence, n - 1, a.mean(), scipy.stats.sem(a))
            assert mean == pytest.approx(a.mean(), rel=1e-12)
            np.testing.assert_allclose((low, high), want, rtol=1e-9)


def test_mean_interval_edges():
    """One value: (value, nan, nan); equal values: a zero-width interval (scipy gives nan
    for scale 0); the three MedMNIST+-style seeds 0.80, 0.82, 0.79 give 0.803 +- 0.038."""
    mean, low, high = mean_interval([0.9])
    assert mean == 0.9 and math.isnan(low) and math.isnan(high)
    assert mean_interval([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)
    mean, low, high = mean_interval([0.80, 0.82, 0.79])
    assert mean == pytest.approx(0.80333333, rel=1e-7)
    assert high - mean == pytest.approx(4.302652729911275 * 0.015275252316519 / math.sqrt(3))


@settings(deadline=None, max_examples=40)
@given(
    values=st.lists(st.floats(-10, 10), min_size=2, max_size=12),
    confidence=st.floats(0.5, 0.99),
)
def test_mean_interval_properties(values, confidence):
    """The interval holds the mean and a higher confidence gives a wider one."""
    mean, low, high = mean_interval(values, confidence)
    assert low <= mean <= high
    _, wide_low, wide_high = mean_interval(values, min(0.999, confidence + 0.05))
    assert wide_low <= low and high <= wide_high


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: wilson_interval(11, 10), "correct=11"),
        (lambda: wilson_interval(0, 0), "n=0"),
        (lambda: wilson_interval(True, 10), "correct=True"),
        (lambda: wilson_interval(5, 10.0), "n=10.0"),
        (lambda: wilson_interval(5, 10, 1.0), "confidence=1.0"),
        (lambda: wilson_interval(5, 10, 0), "confidence=0"),
        (lambda: wilson_interval(5, 10, math.nan), "confidence=nan"),
        (lambda: mcnemar([True, False], [True]), "same images"),
        (lambda: mcnemar([], []), "non-empty"),
        (lambda: mcnemar([0.5, 1.0], [1, 0]), "True/False"),
        (lambda: mcnemar([[True]], [[True]]), "True/False"),
        (lambda: mean_interval([]), "non-empty"),
        (lambda: mean_interval([0.8, math.nan]), "finite"),
        (lambda: mean_interval([True, False]), "numbers"),
        (lambda: mean_interval([0.8, 0.9], 95), "confidence=95"),
        (lambda: t_quantile(0.5, 0), "df=0"),
        (lambda: t_quantile(1.0, 3), "p=1.0"),
        (lambda: normal_quantile(0.0), "p=0.0"),
        (lambda: normal_quantile(math.nan), "p=nan"),
        (lambda: bootstrap_macro_auc([0, 1, 0], [[0.5, 0.5]] * 2), "length mismatch"),
        (lambda: bootstrap_macro_auc([0, 0], [[0.5, 0.5]] * 2), "single class"),
        (lambda: bootstrap_macro_auc([0, 1, 1], [[0.6, 0.4]] * 3, 0), "n_resamples=0"),
        (lambda: bootstrap_macro_auc([0, 1, 1], [[0.6, 0.4]] * 3, 10, 0.9, -1), "seed=-1"),
        (lambda: bootstrap_macro_auc([0, 1] + [2] * 8, [[0.2, 0.3, 0.5]] * 10), "rarest has 1"),
    ],
)
@pytest.mark.filterwarnings("ignore:macro AUC is undefined:RuntimeWarning")
def test_bad_inputs(call, match):
    """Each bad input raises PathMNISTError naming the problem."""
    with pytest.raises(PathMNISTError, match=match):
        call()
