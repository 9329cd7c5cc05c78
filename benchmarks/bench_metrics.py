"""Macro AUC on a PathMNIST-sized problem: pathmnist.metrics.macro_auc against
sklearn.metrics.roc_auc_score(multi_class="ovr", average="macro").

100,000 samples x 9 classes (about the size of PathMNIST's train split), scores = softmax
of standard-normal logits, uniform random labels. The two run interleaved, one call each
per repeat, and the table reports medians; the results must be equal (1e-12 relative).
Target: ours at most half sklearn's time.

Run: python benchmarks/bench_metrics.py [--repeats 15] [--n 100000]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))  # For _results, from any cwd.

from _results import write_section

from pathmnist.metrics import macro_auc


def sklearn_macro(labels, probs):
    return roc_auc_score(labels, probs, multi_class="ovr", average="macro")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=9)
    parser.add_argument("--no-write", action="store_true", help="print only, keep RESULTS.md")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    logits = rng.standard_normal((args.n, args.classes))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)  # (N, C) rows sum to 1, as sklearn's ovr needs.
    labels = rng.integers(0, args.classes, args.n)

    # The first calls are the warm-up (allocations, lazy imports) and give the values.
    ours_value, theirs_value = macro_auc(labels, probs), sklearn_macro(labels, probs)
    assert abs(ours_value - theirs_value) <= 1e-12 * abs(theirs_value), (ours_value, theirs_value)

    times = {macro_auc: [], sklearn_macro: []}
    for i in range(args.repeats):
        # Alternate which goes first, so that neither always runs right after the other.
        for fn in (macro_auc, sklearn_macro) if i % 2 == 0 else (sklearn_macro, macro_auc):
            start = time.perf_counter()
            fn(labels, probs)
            times[fn].append(time.perf_counter() - start)

    ours_t, theirs_t = times[macro_auc], times[sklearn_macro]
    ours_ms, theirs_ms = 1e3 * statistics.median(ours_t), 1e3 * statistics.median(theirs_t)
    ratio = ours_ms / theirs_ms
    table = "\n".join(
        [
            f"macro AUC (one-vs-rest), {args.n:,} x {args.classes} softmax scores, "
            f"median of {args.repeats} interleaved repeats",
            "",
            "| implementation | median time (ms) | macro AUC |",
            "|---|---:|---:|",
            f"| pathmnist.metrics.macro_auc | {ours_ms:.1f} | {ours_value:.15f} |",
            f"| sklearn roc_auc_score(ovr, macro) | {theirs_ms:.1f} | {theirs_value:.15f} |",
            "",
            f"Ratio ours / sklearn: **{ratio:.2f}** (target <= 0.5); "
            f"|difference| = {abs(ours_value - theirs_value):.1e}. Other jobs may share the "
            "CPU: compare the ratio, not the milliseconds.",
        ]
    )
    print(table)
    if not args.no_write:
        write_section("metrics", "Macro AUC: pathmnist.metrics vs scikit-learn", table)
    return ratio


if __name__ == "__main__":
    main()
