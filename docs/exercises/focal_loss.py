"""Exercise for chapter 10 (beyond the seed): the focal loss.

The seed project's future work lists "class-weighted or focal loss". Write
`focal_loss(logits, target, gamma, weight)` (Lin et al. 2017, "Focal Loss for Dense Object
Detection", arXiv 1708.02002), the mean over the batch of

    -w_y (1 - p_y) ** gamma * log p_y          for (B,) integer labels y,
    sum_c -w_c t_c (1 - p_c) ** gamma * log p_c   for (B, C) soft targets t (MixUp, CutMix),

with p = softmax(logits) and w the class weights (all 1 when `weight` is None). The factor
(1 - p) ** gamma shrinks the loss of images the network already gets right, so training
attends to the hard ones; gamma = 0 gives back (weighted) cross-entropy.

The oracle (tests/test_losses.py): kornia's focal_loss and a plain float64 evaluation of
the formula for integer labels; cross-entropy at gamma = 0; one-hot soft targets equal to
their integer labels:

    python -m pathmnist.exercises check docs/exercises/focal_loss.py

Hints. Take log p from `F.log_softmax` (never log(softmax): it underflows), and p from its
exp. `target.ndim == 2` means soft targets. Once it passes, add
"test_focal_is_stable_for_confident_logits" to ORACLE_TESTS: logits of +-1e4 must give a
finite loss and gradient for every gamma. Why does (1 - p) ** 0.5 break there, and how
does the package's `_focal_factor` avoid it?
"""

import torch  # noqa: F401 - yours will need them.
import torch.nn.functional as F  # noqa: F401

REPLACES = {"pathmnist.model.losses.focal_loss": "focal_loss"}
ORACLE_TESTS = (
    "test_focal_equals_kornia_and_direct_evaluation",
    "test_focal_with_gamma_zero_is_cross_entropy",
    "test_focal_soft_targets",
)


def focal_loss(logits, target, gamma=2.0, weight=None):
    """Mean focal loss of logits (B, C) against labels (B,) or soft targets (B, C)."""
    # YOUR CODE HERE
    raise NotImplementedError("write the focal loss: see docs/exercises/focal_loss.py")
