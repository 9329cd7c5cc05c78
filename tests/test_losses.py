"""Tests for pathmnist.model.losses: torch.nn.functional.cross_entropy (both target forms, weights,
label smoothing; float64 to 1e-10), sklearn's compute_class_weight("balanced"),
kornia.losses.focal_loss and a float64 direct evaluation as oracles; stability for
logits of +-1e4; build_loss; bad inputs."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st
from kornia.losses import focal_loss as kornia_focal_loss
from sklearn.utils.class_weight import compute_class_weight

from pathmnist.config import LOSSES
from pathmnist.errors import PathMNISTError
from pathmnist.model.losses import build_loss, class_weights, cross_entropy, focal_loss

TOL = {"rtol": 1e-10, "atol": 1e-10}


def problem(b, c, seed, scale=3.0):
    """float64 logits (B, C), labels (B,), soft targets (B, C), positive class weights (C,)."""
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(b, c, generator=g, dtype=torch.float64)
    labels = torch.randint(0, c, (b,), generator=g)
    soft = torch.softmax(2 * torch.randn(b, c, generator=g, dtype=torch.float64), dim=1)
    weight = 0.1 + torch.rand(c, generator=g, dtype=torch.float64)
    return logits, labels, soft, weight


shapes = {"b": st.integers(1, 6), "c": st.integers(2, 6), "seed": st.integers(0, 2**16)}


@settings(deadline=None, max_examples=25)
@given(**shapes, eps=st.floats(0.0, 1.0), weighted=st.booleans(), soft=st.booleans())
@example(b=1, c=2, seed=0, eps=0.0, weighted=True, soft=False)
@example(b=3, c=4, seed=1, eps=1.0, weighted=True, soft=True)
def test_cross_entropy_equals_torch(b, c, seed, eps, weighted, soft):
    """Integer labels or soft targets, with or without class weights and smoothing: equal
    to torch.nn.functional.cross_entropy in float64 to 1e-10 (torch normalises weighted
    integer labels by sum w[y], weighted soft targets by B)."""
    logits, labels, probs, weight = problem(b, c, seed)
    target = probs if soft else labels
    w = weight if weighted else None
    ours = cross_entropy(logits, target, w, eps)
    ref = F.cross_entropy(logits, target, weight=w, label_smoothing=eps)
    torch.testing.assert_close(ours, ref, **TOL)


def test_cross_entropy_gradient_equals_torch():
    """The gradient with respect to the logits equals torch's too (float64, 1e-10)."""
    logits, labels, _, weight = problem(5, 4, 7)
    x = logits.clone().requires_grad_(True)
    (ours,) = torch.autograd.grad(cross_entropy(x, labels, weight, 0.1), x)
    (ref,) = torch.autograd.grad(F.cross_entropy(x, labels, weight=weight, label_smoothing=0.1), x)
    torch.testing.assert_close(ours, ref, **TOL)


@settings(deadline=None, max_examples=25)
@given(k=st.integers(1, 9), extra=st.lists(st.integers(0, 8), max_size=40))
@example(k=1, extra=[])
def test_class_weights_equal_sklearn_balanced(k, extra):
    """N / (K n_c) equals sklearn's compute_class_weight("balanced") to 1e-12, and every
    class then carries the same total weight N / K."""
    labels = np.array(list(range(k)) + [e % k for e in extra])
    w = class_weights(labels, k)
    ref = compute_class_weight("balanced", classes=np.arange(k), y=labels)
    np.testing.assert_allclose(w.numpy(), ref, rtol=1e-12)
    totals = w.numpy() * np.bincount(labels, minlength=k)
    np.testing.assert_allclose(totals, len(labels) / k, rtol=1e-12)


def direct_focal(logits, labels, gamma, weight=None):
    """The formula evaluated plainly in float64 numpy: mean of -w_y (1 - p_y)^gamma log p_y."""
    z = logits.numpy()
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    rows = np.arange(len(z))
    w = np.ones(z.shape[1]) if weight is None else weight.numpy()
    return float(np.mean(-w[labels] * (1 - p[rows, labels]) ** gamma * np.log(p[rows, labels])))


@settings(deadline=None, max_examples=25)
@given(**shapes, gamma=st.floats(0.0, 5.0), weighted=st.booleans())
@example(b=2, c=3, seed=0, gamma=0.0, weighted=False)
def test_focal_equals_kornia_and_direct_evaluation(b, c, seed, gamma, weighted):
    """Integer labels: equal to kornia's focal_loss (alpha=None, the same class weights,
    reduction="sum" divided by B: its "mean" also divides by C) and to the formula
    evaluated directly in float64, both to 1e-10."""
    logits, labels, _, weight = problem(b, c, seed)
    w = weight if weighted else None
    ours = focal_loss(logits, labels, gamma, w)
    ref = kornia_focal_loss(logits, labels, alpha=None, gamma=gamma, reduction="sum", weight=w)
    torch.testing.assert_close(ours, ref / b, **TOL)
    assert float(ours) == pytest.approx(direct_focal(logits, labels.numpy(), gamma, w), rel=1e-10)


@settings(deadline=None, max_examples=25)
@given(**shapes, weighted=st.booleans())
def test_focal_with_gamma_zero_is_cross_entropy(b, c, seed, weighted):
    """gamma = 0 is cross-entropy: unweighted for integer labels, and weighted for soft
    targets (where torch also divides by B)."""
    logits, labels, probs, weight = problem(b, c, seed)
    torch.testing.assert_close(focal_loss(logits, labels, 0.0), cross_entropy(logits, labels))
    w = weight if weighted else None
    ours = focal_loss(logits, probs, 0.0, w)
    torch.testing.assert_close(ours, F.cross_entropy(logits, probs, weight=w), **TOL)


@settings(deadline=None, max_examples=25)
@given(**shapes, gamma=st.floats(0.0, 5.0))
def test_focal_soft_targets(b, c, seed, gamma):
    """One-hot soft targets give the integer-label value; mixed targets give
    sum_c -w_c t_c (1 - p_c)^gamma log p_c averaged over the batch (float64 direct)."""
    logits, labels, probs, weight = problem(b, c, seed)
    one_hot = F.one_hot(labels, c).double()
    torch.testing.assert_close(
        focal_loss(logits, one_hot, gamma, weight), focal_loss(logits, labels, gamma, weight), **TOL
    )
    p = torch.softmax(logits, dim=1)
    direct = -(weight * probs * (1 - p) ** gamma * torch.log(p)).sum(dim=1).mean()
    torch.testing.assert_close(focal_loss(logits, probs, gamma, weight), direct, **TOL)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("soft", [False, True])
def test_focal_is_stable_for_confident_logits(gamma, soft):
    """Logits of +-1e4 in float32: finite loss and gradients for every gamma (even
    0 < gamma < 1, where x^gamma has an infinite slope at 0). A sure right answer costs 0,
    a sure wrong one 2e4 (= -log p)."""
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], requires_grad=True)
    labels = torch.tensor([0, 0])  # Right, then wrong.
    target = F.one_hot(labels, 3).float() if soft else labels
    loss = focal_loss(logits, target, gamma)
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert loss.item() == pytest.approx(2e4 / 2)


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_build_loss_matches_its_parts(eps):
    """ "ce" and "weighted" equal torch's cross_entropy (weights from sklearn's balanced
    formula) for labels and soft targets; "focal" equals focal_loss on the targets smoothed
    as torch smooths soft targets; each callable backpropagates."""
    logits, labels, probs, _ = problem(6, 9, 3)
    train = np.arange(40) % 9
    w = torch.as_tensor(compute_class_weight("balanced", classes=np.arange(9), y=train))
    ce, weighted = build_loss("ce", label_smoothing=eps), build_loss("weighted", train, 9, eps)
    focal = build_loss("focal", label_smoothing=eps, focal_gamma=1.5)
    for target in (labels, probs):
        ref = F.cross_entropy(logits, target, label_smoothing=eps)
        torch.testing.assert_close(ce(logits, target), ref, **TOL)
        ref = F.cross_entropy(logits, target, weight=w, label_smoothing=eps)
        torch.testing.assert_close(weighted(logits, target), ref, **TOL)
    smoothed = F.one_hot(labels, 9).double() * (1 - eps) + eps / 9
    torch.testing.assert_close(focal(logits, labels), focal_loss(logits, smoothed, 1.5), **TOL)
    x = logits.float().requires_grad_(True)  # The weights follow the logits' dtype.
    for loss in (ce, weighted, focal):
        loss(x, labels).backward()
    assert torch.isfinite(x.grad).all() and set(LOSSES) == {"ce", "weighted", "focal"}


BAD = [
    (lambda: cross_entropy(torch.zeros(3), torch.zeros(3, dtype=torch.long)), "logits"),
    (lambda: cross_entropy(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long)), r"\(2,\)"),
    (lambda: cross_entropy(torch.zeros(2, 3), torch.zeros(2)), "soft targets"),
    (lambda: cross_entropy(torch.zeros(2, 3), torch.zeros(2, 4)), "soft targets"),
    (lambda: cross_entropy(torch.zeros(2, 3), torch.tensor([True, False])), "bool"),
    (lambda: cross_entropy(torch.zeros(2, 3), torch.tensor([0, 3])), r"outside \[0, 3\)"),
    (lambda: cross_entropy(torch.zeros(2, 3), [0, 1]), "tensor"),
    (lambda: cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), torch.ones(2)), "weight"),
    (lambda: cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]), None, 1.5), "smoothing"),
    (lambda: focal_loss(torch.zeros(2, 3), torch.tensor([0, 1]), -1.0), "gamma"),
    (lambda: class_weights([0, 0, 2], 3), r"no sample of class \[1\]"),
    (lambda: class_weights([0, 3], 3), r"outside \[0, 3\)"),
    (lambda: class_weights([0.0, 1.0], 2), "integer"),
    (lambda: class_weights([], 2), "non-empty"),
    (lambda: build_loss("mse"), "choose one of ce, weighted, focal"),
    (lambda: build_loss("weighted"), "train_labels"),
    (lambda: build_loss("focal", focal_gamma=-0.5), "focal_gamma"),
    (lambda: build_loss("ce", num_classes=0), "num_classes"),
]


@pytest.mark.parametrize(("call", "match"), BAD)
def test_bad_inputs_raise(call, match):
    """Wrong shapes or dtypes, labels out of range, a class without samples, an unknown
    loss name and out-of-range settings each raise PathMNISTError naming the problem."""
    with pytest.raises(PathMNISTError, match=match):
        call()
