"""Exercise for chapter 3 (transforms): the per-sample quarter turns.

Write `rot90(x, k)` for `pathmnist.augment.dihedral`: turn sample i of the batch by k[i] * 90
degrees counter-clockwise, as `torch.rot90(sample, k[i])` and torchvision's
`rotate(angle=90 * k[i])` turn it. `x` is a uint8 (B, H, W, 3) batch or a float
(B, 3, H, W) one (the course's layout rule; `checks.batch_layout(x, _name)` returns the two image
dims); `k` is a Python int (the same turn for every sample) or an integer tensor of shape
(B,), of any integer dtype, possibly negative. Return a batch of the same shape, dtype
and layout. `RandomRot90` calls this function with the turns it drew, so once yours is
swapped in the training augmentation uses it.

The oracle (tests/test_transforms.py): torchvision's rotate on each sample with the same
turns, torch.rot90 for every integer dtype and for negative turns, and four turns giving
the batch back (hypothesis, both layouts):

    python -m pathmnist.exercises check docs/exercises/rot90.py

Hints. A loop over the samples calling torch.rot90 is a fine first version: in the
sample (without the batch dim) the image dims are one less than in the batch. k % 4 maps
a negative turn to a positive one. Then compare with the package's version, which builds
the four permutations of the pixel positions once and gathers every sample through its
own (chapter 3): why is it faster on a GPU?
"""

import torch  # noqa: F401 - yours will need it.

from pathmnist.checks import batch_layout

REPLACES = {"pathmnist.augment.dihedral.rot90": "rot90"}
ORACLE_TESTS = (
    "test_rot90_direction_golden",
    "test_rot90_takes_any_integer_k",
    "test_random_rot90_matches_torchvision_rotate_with_replayed_decisions",
    "test_rot90_four_times_is_identity",
)


def rot90(x, k, *, _name="rot90"):
    """Sample i of `x` turned by k[i] * 90 degrees counter-clockwise; same shape and dtype."""
    h, w = batch_layout(x, _name)  # noqa: RUF059 - (1, 2) for uint8 NHWC, (2, 3) for float NCHW
    # YOUR CODE HERE
    raise NotImplementedError("write rot90: see docs/exercises/rot90.py")
