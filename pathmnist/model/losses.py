"""Classification losses: cross-entropy (label smoothing, class weights, soft targets) and focal.

- `cross_entropy(logits, target, weight, label_smoothing)`: torch.nn.functional.cross_entropy
  with reduction="mean", written out from log_softmax, for (B,) integer labels or (B, C)
  soft targets (the mixtures MixUp and CutMix make). Label smoothing (Szegedy et al. 2016,
  arXiv 1512.00567) mixes the target with the uniform distribution: t = (1 - eps) t + eps / C.
  torch's two normalisations are kept exactly (aten/src/ATen/native/LossNLL.cpp):
  with integer labels the weighted mean divides by sum_i w[y_i]; with soft targets it
  divides by the batch size B. So with class weights, one-hot soft targets and the same
  integer labels give different numbers.
- `class_weights(labels, num_classes)`: w_c = N / (K n_c), scikit-learn's "balanced" weights
  (King and Zeng 2001): each class then carries the same total weight N / K.
- `focal_loss(logits, target, gamma, weight)`: Lin et al. 2017, "Focal Loss for Dense Object
  Detection" (arXiv 1708.02002), multi-class: -w_y (1 - p_y)^gamma log p_y, averaged over
  the batch; for soft targets sum_c -w_c t_c (1 - p_c)^gamma log p_c, which is the same for
  one-hot t. Computed in log space: log p from log_softmax and 1 - p = -expm1(log p), exact
  even when p rounds to 1; where 1 - p is exactly 0 the factor passes no gradient (its true
  derivative there, times log p = 0, is 0), so logits of +-1e4 give finite values and
  gradients for every gamma >= 0.
- `build_loss(name, ...)`: the callable `loss(logits, target)` the training loop uses.

Tested (tests/test_losses.py) against torch.nn.functional.cross_entropy (both target forms,
weights, smoothing; float64, 1e-10), sklearn.utils.class_weight.compute_class_weight
("balanced"), kornia.losses.focal_loss (alpha=None, weight=w, reduction="sum" / B, since its
"mean" also divides by C) and a float64 direct evaluation of the formula.
"""

import numpy as np
import torch
import torch.nn.functional as F

from pathmnist.checks import choice, probability, real, whole
from pathmnist.config import LOSSES
from pathmnist.device import PerDevice
from pathmnist.errors import PathMNISTError


def _check(logits, target, weight, name):
    """Shape and dtype checks (no data-dependent check on the GPU: it would wait for it)."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or not logits.is_floating_point():
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise PathMNISTError(f"{name} got logits {got}; pass a float tensor (B, C).")
    b, c = logits.shape
    if not isinstance(target, torch.Tensor):
        raise PathMNISTError(f"{name} got a {type(target).__name__} target; pass a tensor.")
    soft = target.is_floating_point()
    bad_dtype = target.dtype == torch.bool or target.is_complex()
    if bad_dtype or target.shape != ((b, c) if soft else (b,)):
        raise PathMNISTError(
            f"{name} got a {target.dtype} target of shape {tuple(target.shape)} for logits "
            f"{(b, c)}; pass ({b},) integer labels or ({b}, {c}) float soft targets."
        )
    if not soft and target.device.type == "cpu" and b and (target.min() < 0 or target.max() >= c):
        raise PathMNISTError(f"{name} got labels outside [0, {c}); pass class indices.")
    if weight is not None and (not isinstance(weight, torch.Tensor) or weight.shape != (c,)):
        got = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise PathMNISTError(f"{name} got weight {got}; pass a tensor with one value per class.")
    return soft, target if soft else target.long()


def cross_entropy(logits, target, weight=None, label_smoothing=0.0):
    """Mean cross-entropy of `logits` (B, C) against `target`: (B,) integer labels or (B, C)
    soft targets; `weight` (C,) weighs each class; `label_smoothing` in [0, 1]."""
    soft, target = _check(logits, target, weight, "cross_entropy")
    eps = probability(label_smoothing, "label_smoothing")
    b, c = logits.shape
    logp = F.log_softmax(logits, dim=1)  # (B, C): log p, stable for large logits
    w = torch.ones(c, dtype=logp.dtype, device=logp.device) if weight is None else weight
    w = w.to(logp.dtype)
    if soft:
        t = target.to(logp.dtype) * (1 - eps) + eps / c  # (B, C) smoothed targets
        return -(logp * t * w).sum() / b  # torch divides by B here, even with weights.
    w_y = w[target]  # (B,) weight of each sample's class
    nll = -(w_y * logp.gather(1, target[:, None])[:, 0]).sum() / w_y.sum()
    if eps == 0:
        return nll
    # The uniform part: -sum_c w_c log p_c per sample, normalised like the nll term.
    uniform = -(logp * w).sum() / w_y.sum()
    return (1 - eps) * nll + eps / c * uniform


def class_weights(labels, num_classes) -> torch.Tensor:
    """Balanced class weights N / (K n_c) as a float64 tensor (K,) from training labels."""
    k = whole(num_classes, "num_classes", 1)
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y  # MedMNIST's (N, 1).
    if y.ndim != 1 or y.size == 0 or not np.issubdtype(y.dtype, np.integer):
        raise PathMNISTError(
            f"class_weights got labels of shape {y.shape} and dtype {y.dtype}; pass a "
            "non-empty (N,) array of integer class indices."
        )
    if y.min() < 0 or y.max() >= k:
        raise PathMNISTError(f"class_weights got labels outside [0, {k}); check num_classes.")
    counts = np.bincount(y, minlength=k)  # (K,)
    if (counts == 0).any():
        missing = np.flatnonzero(counts == 0).tolist()
        raise PathMNISTError(
            f"class_weights found no sample of class {missing}; a weight N / (K n_c) needs "
            "every class in the training labels (use loss='ce' or a larger subset)."
        )
    return torch.as_tensor(y.size / (k * counts), dtype=torch.float64)


def _focal_factor(logp, gamma):
    """(1 - p)^gamma from log p; no gradient flows where 1 - p is exactly 0."""
    base = -torch.expm1(logp)  # 1 - p, accurate when p is close to 1
    saturated = base <= 0
    # Two branches so that neither produces inf * 0 = NaN in the backward pass (x^gamma has
    # an infinite slope at 0 for gamma < 1): the saturated entries use a detached copy.
    return torch.where(
        saturated, base.detach().clamp_min(0).pow(gamma), base.masked_fill(saturated, 1).pow(gamma)
    )


def focal_loss(logits, target, gamma=2.0, weight=None):
    """Mean focal loss over the batch: -w_y (1 - p_y)^gamma log p_y for (B,) integer labels,
    sum_c -w_c t_c (1 - p_c)^gamma log p_c for (B, C) soft targets; gamma = 0 is the
    (weighted, divided by B) cross-entropy."""
    soft, target = _check(logits, target, weight, "focal_loss")
    gamma = real(gamma, "gamma", 0.0)
    b, c = logits.shape
    logp = F.log_softmax(logits, dim=1)  # (B, C)
    w = torch.ones(c, dtype=logp.dtype, device=logp.device) if weight is None else weight
    w = w.to(logp.dtype)
    if soft:
        t = target.to(logp.dtype)  # (B, C)
        # Zero the classes a sample does not target before multiplying: log p could be -inf.
        logp = logp.masked_fill(t == 0, 0.0)
        return -(w * t * _focal_factor(logp, gamma) * logp).sum() / b
    logp_y = logp.gather(1, target[:, None])[:, 0]  # (B,) log p of the label
    return -(w[target] * _focal_factor(logp_y, gamma) * logp_y).sum() / b


class _Loss:
    """loss(logits, target) for integer labels or soft targets, with its settings fixed."""

    def __init__(self, name, weight, label_smoothing, gamma):
        self.name, self.weight = name, weight
        self.label_smoothing, self.gamma = label_smoothing, gamma
        self._cast = None if weight is None else PerDevice(weight)  # One copy per device.

    def _weight(self, logits):
        if self._cast is None:
            return None
        return self._cast(logits.device, logits.dtype)[0]

    def __call__(self, logits, target):
        if self.name != "focal":
            return cross_entropy(logits, target, self._weight(logits), self.label_smoothing)
        eps = self.label_smoothing
        if eps > 0:  # Smooth as torch does for soft targets: (1 - eps) t + eps / C.
            if not target.is_floating_point():
                target = F.one_hot(target, logits.shape[1]).to(logits.dtype)
            target = target * (1 - eps) + eps / logits.shape[1]
        return focal_loss(logits, target, self.gamma)

    def __repr__(self):
        return (
            f"loss({self.name!r}, label_smoothing={self.label_smoothing}, gamma={self.gamma}, "
            f"weighted={self.weight is not None})"
        )


def build_loss(name, train_labels=None, num_classes=9, label_smoothing=0.0, focal_gamma=2.0):
    """The training loss `loss(logits, target)` named `name` (one of LOSSES).

    "ce": cross-entropy; "weighted": cross-entropy with class_weights(train_labels);
    "focal": unweighted focal loss with gamma `focal_gamma`. `label_smoothing` applies to
    all three. `target` may be (B,) integer labels or (B, C) soft targets.
    """
    name = choice(name, "loss", LOSSES)
    num_classes = whole(num_classes, "num_classes", 1)
    eps = probability(label_smoothing, "label_smoothing")
    gamma = real(focal_gamma, "focal_gamma", 0.0)
    weight = None
    if name == "weighted":
        if train_labels is None:
            raise PathMNISTError(
                "loss='weighted' needs the training labels; pass train_labels=the train "
                "split's labels."
            )
        weight = class_weights(train_labels, num_classes)
    return _Loss(name, weight, eps, gamma)
