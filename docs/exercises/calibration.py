"""Exercise for chapter 6 (metrics): reliability bins and the expected calibration error.

Write `reliability(labels, probs, n_bins=15)`. A model's top-label confidence is the
largest softmax probability of an image; a calibrated model that says 0.8 is right 80% of
the time. Guo et al. (2017) measure it in M equal-width bins of confidence, right-closed:
bin m (m = 1..M) holds the images whose confidence lies in ((m - 1) / M, m / M] (a
confidence of exactly 0 goes to the first bin). For each bin return its images' mean
confidence, their accuracy (the fraction whose top class, argmax, equals the label) and
their count; an empty bin has confidence 0, accuracy 0 and count 0. Return

    Reliability(confidence, accuracy, count, edges)   # from pathmnist.evaluation.calibration

with float64 arrays of M values (count int64) and edges = linspace(0, 1, M + 1). Its `ece`
property is then ECE = sum_m (count_m / N) |accuracy_m - confidence_m|, which chapter 13
reads before and after temperature scaling.

The oracle tests compare expected_calibration_error (which calls your function) with
torchmetrics' MulticlassCalibrationError, and check Guo et al.'s bins by hand:

    python -m pathmnist.exercises check docs/exercises/calibration.py

Hints. labels (N,) ints, probs (N, C) numpy (np.asarray both). The bin of a confidence c is
ceil(c M) - 1, clipped to [0, M - 1]; `np.bincount(index, weights=..., minlength=M)` sums
per bin without a loop; divide by max(count, 1) so an empty bin gives 0.
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
    # YOUR CODE HERE
    raise NotImplementedError("write the reliability bins: see docs/exercises/calibration.py")
