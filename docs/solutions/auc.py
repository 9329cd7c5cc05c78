"""Worked solution: the one-vs-rest ROC AUC of every column (chapter 6).

A loop over the columns with average ranks. The package's `_ovr_auc` does the same count
for all columns at once, with one vectorised argsort; this version is the one to read
first.

    python -m pathmnist.exercises check docs/solutions/auc.py
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
    n, k = scores.shape
    out = np.full(k, np.nan)
    for c in range(k):
        pos = positive[:, c]  # (N,) bool
        p = int(pos.sum())
        q = n - p
        if p == 0 or q == 0:
            continue  # No pairs to count: the AUC is undefined.
        # Tie groups in ascending order: group g holds counts[g] equal scores and ends at
        # 1-based rank ends[g]; its members share the mean rank ends - (counts - 1) / 2.
        _, group, counts = np.unique(scores[:, c], return_inverse=True, return_counts=True)
        ends = np.cumsum(counts)
        ranks = (ends - (counts - 1) / 2)[group]  # (N,) half-integers, exact in float64
        u = ranks[pos].sum() - p * (p + 1) / 2  # Wins plus half the ties, over all pairs.
        out[c] = u / (p * q)  # The only rounding.
    return out
