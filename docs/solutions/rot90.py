"""Worked solution: the per-sample quarter turns (chapter 3).

A loop over samples, the version to read first; the package's `rot90` does the same with
one gather through a table of the four pixel permutations.

    python -m pathmnist.exercises check docs/solutions/rot90.py
"""

import torch

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
    h, w = batch_layout(x, _name)  # (1, 2) for uint8 NHWC, (2, 3) for float NCHW
    turns = torch.as_tensor(k).expand(len(x)) % 4  # (B,): negative turns wrap round
    # In a sample the batch dim is gone, so its image dims are h - 1 and w - 1.
    turned = [
        torch.rot90(sample, int(r), dims=(h - 1, w - 1)) for sample, r in zip(x, turns, strict=True)
    ]
    return torch.stack(turned) if turned else x.clone()
