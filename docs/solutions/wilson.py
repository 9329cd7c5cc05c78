"""Worked solution: the Wilson score interval (chapter 6).

python -m pathmnist.exercises check docs/solutions/wilson.py
"""

import math
from statistics import NormalDist

REPLACES = {"pathmnist.evaluation.stats.wilson_interval": "wilson_interval"}
ORACLE_TESTS = (
    "test_wilson_matches_statsmodels",
    "test_wilson_golden_table",
    "test_wilson_properties",
)


def wilson_interval(correct, n, confidence=0.95) -> tuple[float, float]:
    """(low, high): the Wilson score interval for `correct` successes out of `n` trials."""
    z = NormalDist().inv_cdf((1 + confidence) / 2)  # 1.96 at 95%
    p, z2 = correct / n, z * z
    denominator = 1 + z2 / n
    center = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    low = 0.0 if correct == 0 else max(0.0, center - half)  # Exact ends at p = 0 and 1.
    high = 1.0 if correct == n else min(1.0, center + half)
    return low, high
