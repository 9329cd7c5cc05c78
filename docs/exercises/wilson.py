"""Exercise for chapter 6 (metrics): the Wilson score interval of an accuracy.

Write `wilson_interval(correct, n, confidence=0.95)`, the interval (low, high) for a
proportion measured as `correct` successes out of `n` trials (Wilson 1927; Newcombe 1998,
method 3, no continuity correction). With p = correct / n and z the normal quantile of
(1 + confidence) / 2 (1.96 for 95%):

    center = (p + z^2 / (2n)) / (1 + z^2 / n)
    half   = z * sqrt(p (1 - p) / n + z^2 / (4 n^2)) / (1 + z^2 / n)
    (low, high) = (center - half, center + half).

Unlike the textbook p +- z sqrt(p (1 - p) / n), it never leaves [0, 1] and is not zero
wide at p = 0 or 1: with 0 errors in 20 images the accuracy is not known to be 1.
Chapters 8 and 9 put it beside every accuracy they compare.

The package's chapters and reports call it for every accuracy; the oracle tests compare it
with statsmodels' proportion_confint(method="wilson") at several confidences, with
Newcombe's published table, and check its properties (it holds p, narrows as n grows):

    python -m pathmnist.exercises check docs/exercises/wilson.py

Hints. `statistics.NormalDist().inv_cdf(q)` is the normal quantile. At correct = 0 the
lower end is 0 exactly and at correct = n the upper end is 1 exactly: set them so, since
rounding could put center - half a hair below 0 (or center + half below 1 = p). Return two
floats.
"""

REPLACES = {"pathmnist.evaluation.stats.wilson_interval": "wilson_interval"}
ORACLE_TESTS = (
    "test_wilson_matches_statsmodels",
    "test_wilson_golden_table",
    "test_wilson_properties",
)


def wilson_interval(correct, n, confidence=0.95) -> tuple[float, float]:
    """(low, high): the Wilson score interval for `correct` successes out of `n` trials."""
    # YOUR CODE HERE
    raise NotImplementedError("write the Wilson interval: see docs/exercises/wilson.py")
