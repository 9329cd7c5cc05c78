"""Calibration: does a predicted probability of 0.9 come true 90% of the time?

Implements the expected calibration error and temperature scaling of Guo et al. 2017, "On
Calibration of Modern Neural Networks" (arXiv 1706.04599).

- `reliability(labels, probs, n_bins)`: the top-label confidence p_i = max_c probs[i, c] of
  each sample falls into one of M equal-width bins; per bin, the mean confidence, the
  accuracy (how often the top class is the label) and the count. Bins are right-closed as
  in the paper, I_m = ((m - 1) / M, m / M], so bin index = ceil(p * M) - 1, clamped to
  [0, M - 1] (a confidence is at least 1 / C > 0, so the first bin's open end never bites).
- `expected_calibration_error` = sum_m (n_m / N) |acc_m - conf_m|, the count-weighted gap of
  the reliability diagram; it lies in [0, 1].
- `fit_temperature(logits, labels)`: the one number T > 0 minimising the validation negative
  log-likelihood of softmax(logits / T). Dividing by T > 0 keeps every argmax, so accuracy
  is unchanged and only the confidences move. The NLL is convex in beta = 1 / T (a
  log-sum-exp of linear functions minus a linear function), hence unimodal in u = log T
  (a monotone change of variable), so a golden-section search on u finds its minimum
  without derivatives; float64 throughout.

Tested (tests/test_calibration.py) against torchmetrics.classification.
MulticlassCalibrationError(num_classes=C, n_bins=15, norm="l1") to 1e-6 (torchmetrics rounds
confidences to float32) and scipy.optimize.minimize_scalar on log T (same T to 1e-4). One
documented difference: torchmetrics bins with torch.bucketize(right=True) on [lo, hi) and
gives a confidence of exactly 1.0 a bin of its own; here it joins the last bin (14/15, 1].
"""

import math
from typing import NamedTuple

import numpy as np
import torch

from pathmnist.checks import real, whole
from pathmnist.errors import PathMNISTError

N_BINS = 15  # Guo et al. 2017 and torchmetrics use 15 bins.
# Search range for T: far beyond the 1-3 that trained networks need (Guo et al., Table 1),
# and tight enough that exp(-u) * logits stays finite in float64.
LOG_T_BOUNDS = (math.log(1e-2), math.log(1e2))
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # 0.618...: the interval shrinks by this per step.


def _numpy(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _labels(labels, n, c, name):
    """Labels as int64 (N,), each in [0, C)."""
    y = _numpy(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # MedMNIST stores labels as (N, 1).
    if y.shape != (n,) or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise PathMNISTError(
            f"{name} got labels of shape {y.shape} and dtype {y.dtype} for {n} samples; pass "
            f"{n} integer class indices."
        )
    if n == 0 or y.min() < 0 or y.max() >= c:
        raise PathMNISTError(
            f"{name} needs at least one label, each in [0, {c}); got {n} labels; pass class "
            "indices that match the columns of the scores."
        )
    return y.astype(np.int64)


def _scores(x, name, what):
    """A finite float64 (N, C) array."""
    a = _numpy(x)
    if a.ndim != 2 or a.shape[1] < 1 or not np.issubdtype(a.dtype, np.number):
        raise PathMNISTError(f"{name} got {what} of shape {a.shape}; pass an (N, C) array.")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise PathMNISTError(f"{name} got non-finite {what}; pass finite values.")
    return a


class Reliability(NamedTuple):
    """Per-bin statistics of a reliability diagram; each array has one value per bin.

    confidence and accuracy are 0 where count is 0 (an empty bin has no bar).
    """

    confidence: np.ndarray  # (M,) mean top-label confidence per bin
    accuracy: np.ndarray  # (M,) fraction of samples whose top class is the label
    count: np.ndarray  # (M,) int64 number of samples per bin
    edges: np.ndarray  # (M + 1,) bin edges 0, 1/M, ..., 1

    @property
    def ece(self) -> float:
        """Expected calibration error: the count-weighted mean |accuracy - confidence|."""
        gap = np.abs(self.accuracy - self.confidence)
        return float((self.count * gap).sum() / self.count.sum())


def reliability(labels, probs, n_bins=N_BINS) -> Reliability:
    """Bin the top-label confidences of `probs` (N, C), rows summing to 1, into `n_bins`
    equal-width bins and return each bin's mean confidence, accuracy and count."""
    n_bins = whole(n_bins, "n_bins", 1)
    p = _scores(probs, "reliability", "probabilities")
    y = _labels(labels, len(p), p.shape[1], "reliability")
    if (p < 0).any() or (p > 1).any() or not np.allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-3):
        raise PathMNISTError(
            "reliability got probabilities outside [0, 1] or rows that do not sum to 1; pass "
            "softmax outputs (torch.softmax(logits, dim=1)), not logits."
        )
    conf = p.max(axis=1)  # (N,) top-label confidence
    correct = (p.argmax(axis=1) == y).astype(np.float64)  # (N,) 1 where the top class is right
    # Right-closed bins ((m - 1) / M, m / M]: index ceil(conf * M) - 1.
    index = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)  # (M,)
    safe = np.maximum(count, 1)  # An empty bin divides 0 by 1.
    confidence = np.bincount(index, weights=conf, minlength=n_bins) / safe
    accuracy = np.bincount(index, weights=correct, minlength=n_bins) / safe
    return Reliability(confidence, accuracy, count, np.linspace(0.0, 1.0, n_bins + 1))


def expected_calibration_error(labels, probs, n_bins=N_BINS) -> float:
    """ECE of probabilities `probs` (N, C) against integer `labels` (N,), in [0, 1]."""
    return reliability(labels, probs, n_bins).ece


def apply_temperature(logits, temperature):
    """logits / T: T = 1 is the identity, T > 1 softens the softmax, T < 1 sharpens it."""
    t = real(temperature, "temperature", 0.0, low_open=True)
    return logits / t


def _nll(z, y, u):
    """Mean negative log-likelihood of softmax(z / exp(u)) at labels y, in float64."""
    s = z * math.exp(-u)  # (N, C) logits / T
    top = s.max(axis=1, keepdims=True)  # Subtract the row max: exp never overflows.
    log_norm = top[:, 0] + np.log(np.exp(s - top).sum(axis=1))  # (N,) logsumexp
    return float(np.mean(log_norm - s[np.arange(len(y)), y]))


def fit_temperature(logits, labels, tol=1e-10) -> float:
    """The temperature T minimising the NLL of softmax(logits / T) on held-out `logits`
    (N, C) and `labels` (N,), searched by golden section on log T within LOG_T_BOUNDS.

    Fit it on the validation split, never on the test split. If the optimum lies beyond a
    bound (perfectly separated logits want T -> 0), the bound is returned.
    """
    z = _scores(logits, "fit_temperature", "logits")
    y = _labels(labels, len(z), z.shape[1], "fit_temperature")
    tol = real(tol, "tol", 0.0, 1.0, low_open=True)
    a, b = LOG_T_BOUNDS
    # Golden section: keep two interior points; each step drops the part of [a, b] beyond
    # the worse one, reusing the other point, so one NLL evaluation per step.
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = _nll(z, y, c), _nll(z, y, d)
    while b - a > tol:
        if fc <= fd:  # The minimum lies in [a, d].
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = _nll(z, y, c)
        else:  # The minimum lies in [c, b].
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = _nll(z, y, d)
    # Compare the bracket's best point with the bounds, so a monotone NLL returns the bound.
    u = min((fc, c), (fd, d), (_nll(z, y, a), a), (_nll(z, y, b), b))[1]
    return float(math.exp(u))


def calibrate(val_logits, val_labels, test_logits, test_labels, n_bins=15) -> dict:
    """Temperature fitted on validation; test ECE and reliability before and after."""
    t = fit_temperature(val_logits, val_labels)
    before = torch.as_tensor(test_logits, dtype=torch.float64).softmax(1).numpy()
    after = apply_temperature(torch.as_tensor(test_logits, dtype=torch.float64), t)
    after = torch.as_tensor(after).softmax(1).numpy()
    rel_before = reliability(test_labels, before, n_bins)
    rel_after = reliability(test_labels, after, n_bins)
    return {
        "temperature": float(t),
        "ece": float(rel_before.ece),
        "ece_after_temperature": float(rel_after.ece),
        "reliability_before": rel_before,
        "reliability_after": rel_after,
        "accuracy": float((before.argmax(1) == test_labels).mean()),
        "accuracy_after_temperature": float((after.argmax(1) == test_labels).mean()),
    }
