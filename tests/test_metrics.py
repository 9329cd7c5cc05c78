"""Metrics against sklearn.metrics and medmnist.evaluator (oracles), sklearn's toy macro
AUC, a pairwise O(n^2) count, hypothesis invariants, tensors and bad inputs."""

import numpy as np
import pytest
import sklearn.metrics as skm
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from medmnist.evaluator import getACC, getAUC
from strategies import auc_inputs, binary_auc_inputs

from pathmnist.errors import PathMNISTError
from pathmnist.evaluation.metrics import (
    MACRO,
    accuracy,
    classification_report,
    confusion_matrix,
    macro_auc,
    ovr_auc,
    recall_per_class,
    roc_auc,
)

REL = 1e-12

# sklearn's test_multiclass_ovr_roc_auc_toydata (sklearn/metrics/tests/test_ranking.py):
# per-class AUCs 1, 1 and 0.875, so the unweighted OvR mean is 23/24 = 0.958333...
TOY_LABELS = np.array([0, 1, 2, 2])
TOY_SCORES = np.array([[1.0, 0.0, 0.0], [0.1, 0.5, 0.4], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]])


def sklearn_macro(labels, probs):
    """sklearn's OvR macro AUC; with two classes sklearn only takes binary input, so the
    two one-vs-rest AUCs are averaged by hand (its definition of "ovr")."""
    c = probs.shape[1]
    if c == 2:
        return np.mean([skm.roc_auc_score(labels == k, probs[:, k]) for k in range(c)])
    return skm.roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=range(c))


def pairwise_auc(labels, scores):
    """Mann-Whitney by brute force: over all (positive, negative) pairs, a win counts 1
    and a tie one half."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    twice_u = sum(2 * int(p > q) + int(p == q) for p in pos for q in neg)
    return twice_u / (2 * len(pos) * len(neg))


def test_sklearn_toy_macro_auc():
    """sklearn's toy example: per-class AUCs [1, 1, 0.875] and macro AUC 0.958333..."""
    np.testing.assert_array_equal(ovr_auc(TOY_LABELS, TOY_SCORES), [1.0, 1.0, 0.875])
    assert macro_auc(TOY_LABELS, TOY_SCORES) == pytest.approx(23 / 24, rel=REL)
    assert skm.roc_auc_score(TOY_LABELS, TOY_SCORES, multi_class="ovr") == pytest.approx(23 / 24)


@settings(max_examples=50, deadline=None)
@given(data=auc_inputs(ties=True))
@example(data=(TOY_LABELS, TOY_SCORES))
def test_macro_auc_matches_sklearn_and_medmnist_with_ties(data):
    """With many tied scores, macro AUC equals sklearn's OvR macro AUC and MedMNIST's
    getAUC("multi-class") to 1e-12, and each class equals roc_auc_score."""
    labels, probs = data
    ours = macro_auc(labels, probs)
    assert ours == pytest.approx(sklearn_macro(labels, probs), rel=REL)
    medmnist_labels = labels.astype(float).reshape(-1, 1)  # As MedMNIST's Evaluator gets them.
    assert ours == pytest.approx(getAUC(medmnist_labels, probs, "multi-class"), rel=REL)
    per_class = ovr_auc(labels, probs)
    for k in range(probs.shape[1]):
        assert per_class[k] == pytest.approx(skm.roc_auc_score(labels == k, probs[:, k]), rel=REL)


@settings(max_examples=40, deadline=None)
@given(data=auc_inputs(ties=False))
def test_macro_auc_matches_sklearn_without_ties(data):
    """With continuous scores, macro AUC equals sklearn's and MedMNIST's to 1e-12."""
    labels, probs = data
    ours = macro_auc(labels, probs)
    assert ours == pytest.approx(sklearn_macro(labels, probs), rel=REL)
    assert ours == pytest.approx(getAUC(labels, probs, "multi-class"), rel=REL)


@settings(max_examples=80, deadline=None)
@given(data=binary_auc_inputs(ties=True))
@example(data=(np.array([0, 1]), np.array([0.0, 0.0])))
@example(data=(np.array([1, 0, 1, 0]), np.array([1.0, 1.0, 2.0, 0.0])))
def test_roc_auc_matches_sklearn_and_pairwise_count(data):
    """roc_auc equals sklearn's roc_auc_score to 1e-12 and, exactly, the pairwise count."""
    labels, scores = data
    ours = roc_auc(labels, scores)
    assert ours == pytest.approx(skm.roc_auc_score(labels, scores), rel=REL)
    assert ours == pairwise_auc(labels, scores)


@settings(max_examples=40, deadline=None)
@given(data=binary_auc_inputs(ties=False))
def test_roc_auc_matches_sklearn_without_ties(data):
    """With continuous scores, roc_auc equals sklearn's to 1e-12."""
    labels, scores = data
    assert roc_auc(labels, scores) == pytest.approx(skm.roc_auc_score(labels, scores), rel=REL)


@settings(max_examples=60, deadline=None)
@given(data=binary_auc_inputs(ties=True), gaps=st.lists(st.floats(1e-3, 1e3), min_size=41))
def test_auc_invariant_under_increasing_maps(data, gaps):
    """Replacing the scores by any strictly increasing function of them (here: the
    distinct values mapped to an arbitrary increasing sequence) leaves the AUC unchanged."""
    labels, scores = data
    distinct, index = np.unique(scores, return_inverse=True)
    new_values = np.cumsum(gaps[: len(distinct)]) - 500.0  # Strictly increasing.
    assert roc_auc(labels, new_values[index]) == roc_auc(labels, scores)


@settings(max_examples=60, deadline=None)
@given(data=binary_auc_inputs(ties=True))
def test_negated_scores_give_one_minus_auc(data):
    """roc_auc(y, -s) == 1 - roc_auc(y, s), ties included (a tie is one half both ways)."""
    labels, scores = data
    assert roc_auc(labels, -scores) == pytest.approx(1 - roc_auc(labels, scores), abs=1e-15)


@settings(max_examples=40, deadline=None)
@given(data=auc_inputs(ties=True), seed=st.integers(0, 2**16))
def test_macro_auc_equivariant_under_class_permutation(data, seed):
    """Permuting the score columns and relabelling accordingly permutes the per-class
    AUCs and leaves the macro AUC unchanged."""
    labels, probs = data
    perm = np.random.default_rng(seed).permutation(probs.shape[1])  # new column j = old perm[j]
    relabel = np.argsort(perm)  # old class c is new class relabel[c]
    np.testing.assert_array_equal(
        ovr_auc(relabel[labels], probs[:, perm]), ovr_auc(labels, probs)[perm]
    )
    assert macro_auc(relabel[labels], probs[:, perm]) == pytest.approx(
        macro_auc(labels, probs), rel=REL
    )


@settings(max_examples=60, deadline=None)
@given(data=auc_inputs(ties=True))
def test_accuracy_and_confusion_match_sklearn_and_medmnist(data):
    """accuracy equals sklearn's accuracy_score of the argmax and MedMNIST's getACC; the
    confusion matrix equals sklearn's (rows true, columns predicted), the recall per class
    sklearn's recall_score (0 for a class with no image)."""
    labels, probs = data
    c = probs.shape[1]
    predicted = probs.argmax(axis=1)
    assert accuracy(labels, probs) == skm.accuracy_score(labels, predicted)
    assert accuracy(labels, predicted) == skm.accuracy_score(labels, predicted)
    assert accuracy(labels, probs) == getACC(labels, probs, "multi-class")
    expected = skm.confusion_matrix(labels, predicted, labels=range(c))
    np.testing.assert_array_equal(confusion_matrix(labels, probs, c), expected)
    np.testing.assert_array_equal(confusion_matrix(labels, predicted, c), expected)
    recall = skm.recall_score(labels, predicted, labels=range(c), average=None, zero_division=0)
    np.testing.assert_allclose(recall_per_class(labels, predicted, c), recall, rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(data=auc_inputs(ties=True), shift=st.integers(0, 5))
def test_classification_report_matches_sklearn(data, shift):
    """Per-class precision, recall, F1 and support, and their macro means, equal sklearn's
    precision_recall_fscore_support(zero_division=0) to 1e-12 (shifted predictions make
    classes that are never predicted)."""
    labels, probs = data
    c = probs.shape[1]
    predicted = np.minimum(probs.argmax(axis=1) + shift, c - 1)
    names = [f"class{k}" for k in range(c)]
    report = classification_report(labels, predicted, names)
    p, r, f, s = skm.precision_recall_fscore_support(
        labels, predicted, labels=range(c), zero_division=0
    )
    for k, name in enumerate(names):
        row = report[name]
        assert row["precision"] == pytest.approx(p[k], rel=REL)
        assert row["recall"] == pytest.approx(r[k], rel=REL)
        assert row["f1"] == pytest.approx(f[k], rel=REL)
        assert row["support"] == s[k]
    mp, mr, mf, _ = skm.precision_recall_fscore_support(
        labels, predicted, labels=range(c), zero_division=0, average="macro"
    )
    macro = report[MACRO]
    assert (macro["precision"], macro["recall"], macro["f1"]) == pytest.approx(
        (mp, mr, mf), rel=REL
    )
    assert macro["support"] == len(labels)
    assert list(report) == [*names, MACRO]


def test_tensors_give_the_same_results():
    """Torch tensors (float32, bf16 logits' softmax, int labels, (N, 1) labels) give the
    same numbers as the numpy arrays they hold."""
    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(50, 4, generator=gen), dim=1)
    labels = torch.arange(50) % 4
    np_probs, np_labels = probs.numpy(), labels.numpy()
    assert macro_auc(labels, probs) == macro_auc(np_labels, np_probs)
    assert macro_auc(labels.reshape(-1, 1), probs) == macro_auc(np_labels, np_probs)
    assert accuracy(labels, probs) == accuracy(np_labels, np_probs)
    assert roc_auc(labels == 1, probs[:, 1]) == roc_auc(np_labels == 1, np_probs[:, 1])
    np.testing.assert_array_equal(
        confusion_matrix(labels, probs, 4), confusion_matrix(np_labels, np_probs, 4)
    )
    half = probs.to(torch.bfloat16)
    assert macro_auc(labels, half) == macro_auc(np_labels, half.float().numpy())


def test_logits_and_probabilities_differ():
    """One-vs-rest AUC ranks each column across samples, so softmax (which mixes the
    columns of a row) changes it: here a case where logits and probabilities disagree."""
    logits = np.array([[2.0, 0.0, 0.0], [1.0, -3.0, -3.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    labels = np.array([0, 1, 2, 2])
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert ovr_auc(labels, logits)[0] == 1.0
    assert macro_auc(labels, logits) != macro_auc(labels, probs)
    assert macro_auc(labels, probs) == pytest.approx(sklearn_macro(labels, probs), rel=REL)


def test_undefined_auc_is_nan_with_warning():
    """A binary problem with only one class present gives NaN and a RuntimeWarning."""
    with pytest.warns(RuntimeWarning, match="undefined"):
        assert np.isnan(roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))


def test_macro_auc_skips_undefined_classes_with_warning():
    """A class absent from the labels is left out of the macro mean, with a warning
    naming it; the result is the mean of the defined classes' AUCs."""
    labels = np.array([0, 1, 0, 1])
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.5, 0.4, 0.1], [0.6, 0.3, 0.1]])
    with pytest.warns(RuntimeWarning, match=r"classes \[2\]"):
        value = macro_auc(labels, probs)
    per_class = ovr_auc(labels, probs)
    assert np.isnan(per_class[2])
    assert value == pytest.approx(np.mean(per_class[:2]), rel=REL)
    with pytest.warns(RuntimeWarning, match="no class"):
        assert np.isnan(macro_auc([0], [[0.5, 0.5]]))


BAD_INPUTS = [
    (macro_auc, ([0, 1, 2], np.full((2, 3), 1 / 3)), "shape"),  # length mismatch
    (macro_auc, ([0, 1], [0.5, 0.5]), "shape"),  # 1-D scores
    (macro_auc, ([0, 1], np.ones((2, 1))), "shape"),  # one column
    (macro_auc, ([0, 1], np.ones((2, 2, 2))), "shape"),  # 3-D scores
    (macro_auc, ([0, 1], [[np.nan, 1.0], [0.5, 0.5]]), "NaN"),
    (macro_auc, ([0, 1], [[np.inf, 1.0], [0.5, 0.5]]), "infinity"),
    (macro_auc, ([0, 3], np.full((2, 3), 1 / 3)), "label 3 outside"),
    (macro_auc, ([0, -1], np.full((2, 3), 1 / 3)), "label -1 outside"),
    (macro_auc, ([0.5, 1.0], np.full((2, 3), 1 / 3)), "whole-number"),
    (macro_auc, ([], np.zeros((0, 3))), "non-empty"),
    (macro_auc, ([[0, 1], [1, 0]], np.full((2, 2), 0.5)), "vector"),
    (macro_auc, ([0, 1], [["a", "b"], ["c", "d"]]), "must hold numbers"),
    (roc_auc, ([0, 1, 2], [0.1, 0.2, 0.3]), "label 2 outside"),
    (roc_auc, ([0, 1], [0.1, 0.2, 0.3]), "shape"),
    (roc_auc, ([0, 1], [0.1, np.nan]), "NaN"),
    (accuracy, ([0, 1, 1], [0, 1]), "y_pred has 2"),
    (accuracy, ([0, 2], [[0.5, 0.5], [0.5, 0.5]]), "label 2 outside"),
    (accuracy, ([0, 1], [[0.5, np.nan], [0.5, 0.5]]), "NaN"),
    (confusion_matrix, ([0, 1], [0, 1], 0), "num_classes"),
    (confusion_matrix, ([0, 1], [0, 1], 1.5), "num_classes"),
    (confusion_matrix, ([0, 1], [0, 2], 2), "y_pred holds label 2"),
    (confusion_matrix, ([0, 1], np.full((2, 3), 1 / 3), 2), "3 score columns"),
    (classification_report, ([0, 1], [0, 1], ["a", "a"]), "unique"),
    (classification_report, ([0, 1], [0, 1], []), "non-empty"),
    (classification_report, ([0, 2], [0, 1], ["a", "b"]), "label 2 outside"),
]


@pytest.mark.parametrize(("fn", "args", "words"), BAD_INPUTS, ids=range(len(BAD_INPUTS)))
def test_bad_inputs(fn, args, words):
    """Bad shapes, lengths, labels or scores raise PathMNISTError naming the problem."""
    with pytest.raises(PathMNISTError, match=words):
        fn(*args)
