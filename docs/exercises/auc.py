"""Exercise for chapter 6 (metrics): the one-vs-rest ROC AUC of every column.

Write `ovr_auc(positive, scores)`. For each column k it returns the probability that a
random positive sample (positive[:, k] True) scores above a random negative one, a tie
counting one half: the Mann-Whitney U statistic divided by P * N. A column with no
positives or no negatives has no AUC: return NaN there.

The package's `roc_auc`, `ovr_auc` and `macro_auc` all call this function, so once yours is
swapped in they use it; the package's oracle tests then compare them with scikit-learn's
roc_auc_score, MedMNIST's getAUC and a brute-force pair count:

    python -m pathmnist.exercises check docs/exercises/auc.py

Hints. Sort each column once; tied scores share the average of the (1-based) ranks they
occupy; then U = (sum of the positives' ranks) - P (P + 1) / 2. `np.unique(...,
return_inverse=True, return_counts=True)` finds the tie groups. A Python loop over the K
columns is fine; a double loop over pairs is not (the validation split has 10,004
images). The pair-count test compares exactly: keep U a sum of half-integers and divide
once, at the end.
"""

import numpy as np

REPLACES = {"pathmnist.evaluation.metrics._ovr_auc": "ovr_auc"}
ORACLE_TESTS = (
    "test_sklearn_toy_macro_auc",
    "test_roc_auc_matches_sklearn_and_pairwise_count",
    "test_macro_auc_matches_sklearn_and_medmnist_with_ties",
    "test_macro_auc_skips_undefined_classes_with_warning",
)


def ovr_auc(positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """positive: bool (N, K); scores: float64 (N, K) -> float64 (K,): the AUC of each
    column, NaN where the column has no positives or no negatives."""
    # YOUR CODE HERE
    raise NotImplementedError("write ovr_auc: see the top of docs/exercises/auc.py")
