"""Worked solution: the reliability bins and the ECE (chapter 6).

python -m pathmnist.exercises check docs/solutions/calibration.py
"""

import numpy as np

from pathmnist.evaluation.calibration import Reliability

REPLACES = {"pathmnist.evaluation.calibration.reliability": "reliability"}
ORACLE_TESTS = (
    "test_ece_equals_torchmetrics",
    "test_ece_equals_torchmetrics_property",
    "test_golden_bins_and_the_confidence_one_difference",
    "test_an_edge_confidence_falls_into_the_bin_it_closes",
    "test_empty_bins_are_zero_and_perfect_calibration_is_zero",
)


def reliability(labels: np.ndarray, probs: np.ndarray, n_bins=15) -> Reliability:
    """Per-bin mean confidence, accuracy and count of the top-label confidences of probs."""
    y, p = np.asarray(labels), np.asarray(probs, dtype=np.float64)  # (N,), (N, C)
    conf = p.max(axis=1)  # (N,) top-label confidence
    correct = (p.argmax(axis=1) == y).astype(np.float64)  # (N,)
    # Right-closed bins ((m - 1) / M, m / M]: index ceil(c M) - 1; c = 0 goes to bin 0.
    index = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)  # (M,)
    safe = np.maximum(count, 1)  # An empty bin divides 0 by 1.
    confidence = np.bincount(index, weights=conf, minlength=n_bins) / safe
    accuracy = np.bincount(index, weights=correct, minlength=n_bins) / safe
    return Reliability(confidence, accuracy, count, np.linspace(0.0, 1.0, n_bins + 1))
