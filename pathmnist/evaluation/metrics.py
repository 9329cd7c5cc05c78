"""Classification metrics: accuracy, confusion matrix, ROC AUC (binary, one-vs-rest, macro),
and a per-class precision/recall/F1 report.

ROC AUC is computed as the Mann-Whitney U statistic (Mann & Whitney 1947; Hanley & McNeil
1982): the probability that a random positive scores above a random negative, ties
counting one half,

    AUC = U / (P N),   U = #{(pos, neg): s_pos > s_neg} + 1/2 #{(pos, neg): s_pos = s_neg}

for P positives and N negatives (equivalently, from average ranks r_i with ties sharing
their mean rank: U = sum of r_i over positives - P (P + 1) / 2). After one sort, U is
counted per group of tied scores, so the cost is O(n log n), and `macro_auc` sorts all C
columns in one vectorised call. The counts are integers, so the only rounding is the
final division.

`macro_auc` is the unweighted one-vs-rest mean over classes, the number MedMNIST reports
(medmnist.evaluator.getAUC with task "multi-class") and
`sklearn.metrics.roc_auc_score(multi_class="ovr", average="macro")`. Scores should be
class probabilities (softmax of the logits), as MedMNIST's Evaluator takes them: the
one-vs-rest AUC of raw logits is a different number (docs/06_metrics.md shows why).

A class with no positives or no negatives has no AUC: `roc_auc` returns NaN with a
RuntimeWarning, `macro_auc` averages over the classes that have one, with a warning that
names the others (sklearn raises instead). A precision, recall or F1 whose denominator
is 0 is 0.0, as sklearn's `zero_division=0`.

Tested against sklearn.metrics (accuracy_score, confusion_matrix, roc_auc_score,
precision_recall_fscore_support) and medmnist.evaluator (getAUC, getACC), on sklearn's toy
macro AUC (test_multiclass_ovr_roc_auc_toydata, 0.958333...), a pairwise O(n^2) count,
and hypothesis properties (invariance to increasing maps of the scores, AUC(-s) = 1 - AUC(s)).
"""

import warnings

import numpy as np
import torch

from pathmnist.errors import PathMNISTError

MACRO = "macro avg"  # The report's row of unweighted means, named as sklearn names it.


def _to_numpy(x) -> np.ndarray:
    """numpy arrays, lists and torch tensors (any device, bf16 included) to numpy."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        # numpy has no bfloat16; float32 holds every bf16 and fp16 value exactly.
        return (x.float() if x.is_floating_point() and x.itemsize < 4 else x).numpy()
    return np.asarray(x)


def _labels(y, name: str = "y_true") -> np.ndarray:
    """Class labels as int64 (N,); MedMNIST's (N, 1) label columns are accepted."""
    y = _to_numpy(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) == 0:
        raise PathMNISTError(
            f"{name} must be a non-empty vector of class labels, got shape {y.shape}; "
            "pass one integer label per sample."
        )
    whole = np.issubdtype(y.dtype, np.integer) or y.dtype == bool
    if not whole and not (
        np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y) & (y == np.round(y)))
    ):
        raise PathMNISTError(
            f"{name} must hold whole-number class labels, got dtype {y.dtype}; "
            "pass integer labels 0..C-1."
        )
    return y.astype(np.int64)


def _in_range(y: np.ndarray, num_classes: int, name: str = "y_true") -> np.ndarray:
    """y itself, after checking every label lies in [0, num_classes)."""
    outside = (y < 0) | (y >= num_classes)
    if outside.any():
        raise PathMNISTError(
            f"{name} holds label {int(y[outside][0])} outside [0, {num_classes}); pass "
            "labels 0..C-1 that match the score columns / num_classes."
        )
    return y


def _scores(s, n: int, name: str = "y_score", ndim: int = 2) -> np.ndarray:
    """Finite float64 scores (n, C) (or (n,) when ndim is 1)."""
    s = _to_numpy(s)
    if s.ndim != ndim or s.shape[0] != n or (ndim == 2 and s.shape[1] < 2):
        want = f"({n}, C) with C >= 2" if ndim == 2 else f"({n},)"
        raise PathMNISTError(
            f"{name} has shape {s.shape} but {want} is needed; pass one row of class "
            "scores per label (a length mismatch means labels and scores come from different sets)."
        )
    try:
        s = np.asarray(s, dtype=np.float64)  # No copy when the scores are float64 already.
    except (TypeError, ValueError):
        raise PathMNISTError(
            f"{name} must hold numbers, got dtype {s.dtype}; pass float class scores."
        ) from None
    if not np.all(np.isfinite(s)):
        raise PathMNISTError(
            f"{name} contains NaN or infinity; the model diverged or the scores were not "
            "computed for every sample, so fix them before computing metrics."
        )
    return s


def _predictions(y_pred, n: int, num_classes: int | None) -> np.ndarray:
    """Predicted labels (n,) from labels (n,) or from scores (n, C) by argmax."""
    p = _to_numpy(y_pred)
    if p.ndim == 2 and p.shape[1] > 1:
        if num_classes is not None and p.shape[1] != num_classes:
            raise PathMNISTError(
                f"y_pred has {p.shape[1]} score columns but num_classes is {num_classes}; "
                "pass scores with one column per class."
            )
        return np.argmax(_scores(p, n, "y_pred"), axis=1)  # First maximum wins, as numpy.
    p = _labels(p, "y_pred")
    if num_classes is not None:
        _in_range(p, num_classes, "y_pred")
    if len(p) != n:
        raise PathMNISTError(
            f"y_true has {n} labels but y_pred has {len(p)}; pass one prediction per sample."
        )
    return p


def accuracy(y_true, y_score) -> float:
    """Fraction of samples whose predicted class (argmax of a (N, C) score row, or the
    given (N,) label) equals the true label."""
    y = _labels(y_true)
    s = _to_numpy(y_score)
    num_classes = s.shape[1] if s.ndim == 2 and s.shape[1] > 1 else None
    if num_classes is not None:
        _in_range(y, num_classes)  # Labels must index the score columns.
    return float(np.mean(_predictions(s, len(y), num_classes) == y))


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """int64 (C, C) counts: row = true class, column = predicted class (as sklearn)."""
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, int | np.integer)
        or num_classes < 1
    ):
        raise PathMNISTError(
            f"num_classes must be a positive int, got {num_classes!r}; pass e.g. 9."
        )
    y = _in_range(_labels(y_true), num_classes)
    p = _predictions(y_pred, len(y), num_classes)
    # One bincount over the flattened (true, pred) index instead of a Python loop.
    return np.bincount(num_classes * y + p, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def recall_per_class(y_true, y_pred, num_classes: int) -> np.ndarray:
    """float64 (C,): true positives / images of each class (0 for a class with none), as
    sklearn's recall_score(average=None, zero_division=0)."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    return cm.diagonal() / cm.sum(1).clip(min=1)


def _ovr_auc(positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUC of each column: positive bool (N, K), scores (N, K) -> (K,), NaN where a column
    has no positives or no negatives."""
    n, k = scores.shape
    # Work class-major, so that each class's N scores are one contiguous run.
    runs = np.ascontiguousarray(scores.T)  # (K, N)
    order = np.argsort(runs, axis=1)  # (K, N): one call sorts all K classes
    flat = (order + n * np.arange(k)[:, None]).ravel()  # (K*N,) indices into the runs
    s = runs.ravel()[flat]  # (K*N,) ascending within each class
    neg = ~np.ascontiguousarray(positive.T).ravel()[flat]  # (K*N,) negatives, same order
    # Tie groups: a group ends where the next score differs or where a class's run ends.
    last = np.ones(k * n, dtype=bool)
    last[:-1] = s[1:] != s[:-1]
    last[n - 1 :: n] = True
    ends = np.flatnonzero(last)  # (G,) flat index of each group's last element
    seen_upto = ends % n + 1  # (G,) samples of the class in the group or below it
    neg_seen = np.cumsum(neg.reshape(k, n), axis=1).ravel()  # negatives so far in the class
    neg_upto = neg_seen[ends]  # (G,) negatives in the group or below it
    pos_upto = seen_upto - neg_upto  # (G,) positives likewise
    # Below a group: the previous group's counts, or nothing for a class's first group.
    first = np.ones(len(ends), dtype=bool)
    first[1:] = seen_upto[:-1] == n
    neg_below = np.where(first, 0, np.roll(neg_upto, 1))
    pos_below = np.where(first, 0, np.roll(pos_upto, 1))
    # Mann-Whitney U: a positive beats every negative below its group and ties (one half)
    # with the negatives in it, so 2U = sum over groups of P_g (2 N_below + N_g), where
    # 2 N_below + N_g = N_below + N_upto. Integers throughout, summed per class.
    twice_u_groups = (pos_upto - pos_below) * (neg_below + neg_upto)  # (G,)
    twice_u = np.add.reduceat(twice_u_groups, np.flatnonzero(first))  # (K,)
    n_neg = neg_seen.reshape(k, n)[:, -1]  # (K,)
    denominator = 2 * (n - n_neg) * n_neg  # 2 P N
    return np.where(denominator > 0, twice_u / np.maximum(denominator, 1), np.nan)


def roc_auc(y_true_binary, score) -> float:
    """Area under the ROC curve of a binary problem: P(score of a positive > score of a
    negative), ties one half. NaN (with a RuntimeWarning) when one class is absent."""
    y = _in_range(_labels(y_true_binary, "y_true_binary"), 2, "y_true_binary")
    s = _scores(score, len(y), "score", ndim=1)
    auc = float(_ovr_auc(y[:, None] == 1, s[:, None])[0])
    if np.isnan(auc):
        warnings.warn(
            f"ROC AUC is undefined: y_true_binary has only class {y[0]}; returning NaN.",
            RuntimeWarning,
            stacklevel=2,
        )
    return auc


def ovr_auc(y_true, y_score) -> np.ndarray:
    """One-vs-rest AUC of each class (C,): class c's scores y_score[:, c] against
    "label == c"; NaN for a class with no positives or no negatives."""
    y = _labels(y_true)
    s = _scores(y_score, len(y))
    _in_range(y, s.shape[1])
    return _ovr_auc(y[:, None] == np.arange(s.shape[1]), s)


def macro_auc(y_true, y_score) -> float:
    """Unweighted mean of the one-vs-rest AUCs over classes (MedMNIST's "AUC").

    Classes without positives or negatives are left out of the mean with a warning
    naming them; NaN (with a warning) if no class has an AUC.
    """
    aucs = ovr_auc(y_true, y_score)
    undefined = np.flatnonzero(np.isnan(aucs))
    if len(undefined) == len(aucs):
        warnings.warn(
            "macro AUC is undefined: no class has both positives and negatives; returning NaN.",
            RuntimeWarning,
            stacklevel=2,
        )
        return float("nan")
    if len(undefined):
        warnings.warn(
            f"classes {undefined.tolist()} have no positives or no negatives, so their AUC is "
            f"undefined; macro AUC averages the other {len(aucs) - len(undefined)} classes.",
            RuntimeWarning,
            stacklevel=2,
        )
    return float(np.mean(aucs[~np.isnan(aucs)]))


def classification_report(y_true, y_pred, class_names) -> dict[str, dict]:
    """Per-class precision, recall, F1 and support, then their unweighted means.

    Returns `{name: {"precision", "recall", "f1", "support"}}` in class order, plus the
    row "macro avg" (means over all classes; support = number of samples). A ratio
    with a zero denominator is 0.0 (sklearn's zero_division=0).
    """
    names = [str(name) for name in class_names]
    if not names or len(set(names)) != len(names) or MACRO in names:
        raise PathMNISTError(
            f"class_names must be non-empty, unique and not {MACRO!r}, got {names}; "
            "pass one distinct name per class, e.g. pathmnist.data.dataset.CLASS_NAMES."
        )
    cm = confusion_matrix(y_true, y_pred, len(names))  # (C, C)
    tp = np.diag(cm).astype(np.float64)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)

    def ratio(num, den):
        return np.where(den > 0, num / np.maximum(den, 1), 0.0)

    precision, recall = ratio(tp, predicted), ratio(tp, support)
    f1 = ratio(2 * tp, predicted + support)  # = 2PR / (P + R), from the counts.
    report = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
        for name, p, r, f, n in zip(names, precision, recall, f1, support, strict=True)
    }
    report[MACRO] = {
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
        "support": int(support.sum()),
    }
    return report
