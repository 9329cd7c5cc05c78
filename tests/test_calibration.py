"""Tests for pathmnist.evaluation.calibration: torchmetrics' MulticlassCalibrationError as the ECE
oracle (1e-6), scipy.optimize.minimize_scalar on log T as the temperature oracle (1e-4),
hand-computed golden bins, hypothesis properties, and bad inputs."""

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.optimize import minimize_scalar
from strategies import auc_inputs
from torchmetrics.classification import MulticlassCalibrationError

from pathmnist.errors import PathMNISTError
from pathmnist.evaluation.calibration import (
    LOG_T_BOUNDS,
    Reliability,
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    reliability,
)


def overconfident(n=400, c=9, scale=3.0, seed=0):
    """Logits of a noisy, overconfident classifier, and their labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    logits = scale * (rng.normal(size=(n, c)) + 1.5 * np.eye(c)[labels])
    return logits, labels


def softmax(z):
    return torch.softmax(torch.as_tensor(z, dtype=torch.float64), dim=1).numpy()


def torchmetrics_ece(labels, probs, n_bins=15):
    metric = MulticlassCalibrationError(num_classes=probs.shape[1], n_bins=n_bins, norm="l1")
    return float(metric(torch.as_tensor(probs), torch.as_tensor(labels)))


@pytest.mark.parametrize(("seed", "n_bins", "scale"), [(0, 15, 3.0), (1, 15, 0.5), (2, 10, 8.0)])
def test_ece_equals_torchmetrics(seed, n_bins, scale):
    """Over- and underconfident probabilities: the same ECE as torchmetrics to 1e-6
    (torchmetrics rounds the confidences to float32)."""
    logits, labels = overconfident(scale=scale, seed=seed)
    probs = softmax(logits)
    assert probs.max(axis=1).max() < 1.0  # No confidence of exactly 1 (binned differently).
    ece = expected_calibration_error(labels, probs, n_bins)
    assert ece == pytest.approx(torchmetrics_ece(labels, probs, n_bins), abs=1e-6)


@settings(deadline=None, max_examples=25)
@given(data=auc_inputs(max_n=40, max_classes=6, ties=False), n_bins=st.integers(1, 20))
def test_ece_equals_torchmetrics_property(data, n_bins):
    """Any labels and continuous probabilities: torchmetrics' ECE to 1e-6."""
    labels, probs = data
    conf = probs.max(axis=1) * n_bins
    # A confidence on a bin edge is binned differently (torchmetrics: [lo, hi)); skip those.
    if np.any(np.abs(conf - np.round(conf)) < 1e-6):
        return
    assert expected_calibration_error(labels, probs, n_bins) == pytest.approx(
        torchmetrics_ece(labels, probs, n_bins), abs=1e-6
    )


def test_golden_bins_and_the_confidence_one_difference():
    """Two bins by hand. (0, 0.5]: confidences 0.35 (right), 0.4 (wrong): mean 0.375,
    accuracy 0.5. (0.5, 1]: 0.6 (right), 1.0 (wrong): mean 0.8, accuracy 0.5. ECE =
    0.5 * 0.125 + 0.5 * 0.3 = 0.2125. torchmetrics gives the confidence 1.0 a bin of its
    own: 0.5 * 0.125 + 0.25 * 0.4 + 0.25 * 1.0 = 0.4125 (the documented difference)."""
    probs = np.array([[0.35, 0.3, 0.35], [0.4, 0.3, 0.3], [0.2, 0.6, 0.2], [0.0, 0.0, 1.0]])
    labels = np.array([0, 1, 1, 0])  # The first row's tie goes to class 0, as argmax does.
    rel = reliability(labels, probs, n_bins=2)
    np.testing.assert_allclose(rel.confidence, [0.375, 0.8])
    np.testing.assert_allclose(rel.accuracy, [0.5, 0.5])
    np.testing.assert_array_equal(rel.count, [2, 2])
    np.testing.assert_allclose(rel.edges, [0.0, 0.5, 1.0])
    assert rel.ece == pytest.approx(0.2125, abs=1e-12)
    assert expected_calibration_error(labels, probs, 2) == rel.ece
    assert torchmetrics_ece(labels, probs, 2) == pytest.approx(0.4125, abs=1e-6)


def test_an_edge_confidence_falls_into_the_bin_it_closes():
    """Guo et al.'s bins are right-closed: a confidence of exactly 0.5 with 2 bins is in
    (0, 0.5], and 1.0 in (0.5, 1]."""
    probs = np.array([[0.5, 0.5], [1.0, 0.0]])
    rel = reliability(np.array([0, 0]), probs, n_bins=2)
    np.testing.assert_array_equal(rel.count, [1, 1])


def test_empty_bins_are_zero_and_perfect_calibration_is_zero():
    """Empty bins report 0 and count 0; labels drawn from the probabilities themselves give
    an ECE close to 0 (here below 0.02 with 20,000 samples)."""
    rng = np.random.default_rng(3)
    probs = softmax(rng.normal(size=(20000, 4)))
    # Inverse-CDF sampling: label = number of cumulative probabilities below a uniform.
    labels = np.minimum((rng.random((20000, 1)) > probs.cumsum(axis=1)).sum(axis=1), 3)
    rel = reliability(labels, probs)
    assert (rel.confidence[rel.count == 0] == 0).all()
    assert rel.count.sum() == 20000 and rel.count[:3].sum() == 0  # Confidence >= 1/4.
    assert rel.ece < 0.02


@settings(deadline=None, max_examples=25)
@given(data=auc_inputs(max_n=30, max_classes=5), n_bins=st.integers(1, 30))
@example(data=(np.array([0, 1]), np.array([[1.0, 0.0], [1.0, 0.0]])), n_bins=1)
def test_ece_lies_in_zero_one(data, n_bins):
    """The ECE is in [0, 1] and the bin counts add up to N."""
    labels, probs = data
    rel = reliability(labels, probs, n_bins)
    assert 0.0 <= rel.ece <= 1.0 and rel.count.sum() == len(labels)


def test_fit_temperature_equals_scipy():
    """An overconfident model gets T > 1, the minimiser of the NLL found by scipy's
    minimize_scalar (bounded, on log T) to 1e-4, and the NLL falls."""
    logits, labels = overconfident(scale=4.0)
    t = fit_temperature(logits, labels)
    z, y = torch.as_tensor(logits), torch.as_tensor(labels)

    def nll(u):
        return float(torch.nn.functional.cross_entropy(z / math.exp(u), y))

    ref = minimize_scalar(nll, bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-10})
    assert t > 1.5 and t == pytest.approx(math.exp(ref.x), rel=1e-4)
    assert nll(math.log(t)) < nll(0.0)
    after = expected_calibration_error(labels, softmax(apply_temperature(logits, t)))
    assert after < expected_calibration_error(labels, softmax(logits))


def test_underconfident_logits_get_t_below_one():
    """Logits that are too timid are sharpened: T < 1 (scipy agrees to 1e-4)."""
    logits, labels = overconfident(scale=0.3, seed=4)
    t = fit_temperature(torch.as_tensor(logits), torch.as_tensor(labels))
    z, y = torch.as_tensor(logits), torch.as_tensor(labels)
    ref = minimize_scalar(
        lambda u: float(torch.nn.functional.cross_entropy(z / math.exp(u), y)),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert t < 1 and t == pytest.approx(math.exp(ref.x), rel=1e-4)


def test_separable_logits_return_the_lower_bound():
    """Perfectly separated logits want T -> 0: the search stops at the lower bound."""
    logits = np.array([[2.0, 0.0], [0.0, 2.0]])
    assert fit_temperature(logits, np.array([0, 1])) == pytest.approx(math.exp(LOG_T_BOUNDS[0]))


# Logits on a grid of 1/8 within [-8, 8]: dividing by T in [0.1, 10] cannot merge two of them.
grid_logits = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 10), st.integers(2, 6)),
    elements=st.integers(-64, 64).map(lambda k: k / 8),
)


@settings(deadline=None, max_examples=25)
@given(logits=grid_logits, t=st.floats(0.1, 10.0))
@example(logits=np.zeros((1, 2)), t=1.0)
def test_temperature_keeps_every_argmax_and_one_is_the_identity(logits, t):
    """Dividing by T > 0 changes no argmax (so no accuracy); T = 1 returns equal logits,
    for numpy arrays and tensors alike."""
    scaled = apply_temperature(logits, t)
    np.testing.assert_array_equal(scaled.argmax(axis=1), logits.argmax(axis=1))
    np.testing.assert_array_equal(apply_temperature(logits, 1.0), logits)
    z = torch.as_tensor(logits)
    assert torch.equal(apply_temperature(z, 1), z)


BAD = [
    (lambda: reliability([0, 1], np.full((2, 2), 0.5), n_bins=0), "n_bins"),
    (lambda: reliability([0, 1], np.full((2, 2), 0.6)), "sum to 1"),
    (lambda: reliability([0, 1], np.array([[1.5, -0.5], [0.5, 0.5]])), "outside"),
    (lambda: reliability([0, 2], np.full((2, 2), 0.5)), r"in \[0, 2\)"),
    (lambda: reliability([0, 1, 1], np.full((2, 2), 0.5)), "shape"),
    (lambda: reliability([0.0, 1.0], np.full((2, 2), 0.5)), "integer"),
    (lambda: reliability([], np.zeros((0, 2))), "at least one"),
    (lambda: reliability([0], np.full(2, 0.5)), r"\(N, C\)"),
    (lambda: reliability([0], np.array([[np.nan, 0.5]])), "non-finite"),
    (lambda: fit_temperature(np.zeros((2, 3)), [0, 3]), r"in \[0, 3\)"),
    (lambda: fit_temperature(np.zeros(3), [0]), r"\(N, C\)"),
    (lambda: fit_temperature(np.array([[np.inf, 0.0]]), [0]), "non-finite"),
    (lambda: apply_temperature(np.zeros((1, 2)), 0.0), "temperature"),
    (lambda: apply_temperature(np.zeros((1, 2)), -1.0), "temperature"),
]


@pytest.mark.parametrize(("call", "match"), BAD)
def test_bad_inputs_raise(call, match):
    """Wrong shapes, probabilities that are not a distribution, labels out of range,
    n_bins < 1 and T <= 0 each raise PathMNISTError naming the problem."""
    with pytest.raises(PathMNISTError, match=match):
        call()


def test_reliability_is_a_named_tuple():
    """reliability returns the four arrays by name, one value per bin."""
    logits, labels = overconfident(n=50)
    rel = reliability(torch.as_tensor(labels), torch.as_tensor(softmax(logits)), n_bins=7)
    assert isinstance(rel, Reliability)
    assert [len(a) for a in rel] == [7, 7, 7, 8] and rel.count.dtype == np.int64
