"""Worked solution: colour deconvolution (chapter 3).

python -m pathmnist.exercises check docs/solutions/colour_deconvolution.py
"""

import math

import torch

from pathmnist.augment import stain

REPLACES = {"pathmnist.augment.stain._separate": "separate"}
ORACLE_TESTS = (
    "test_rgb_to_hed_matches_skimage",
    "test_round_trip_where_no_stain_is_clipped",
    "test_hed_jitter_sigma_zero_is_the_identity",
    "test_hed_jitter_matches_skimage_with_replayed_draws",
)


def separate(x):
    """Unclipped stain amounts (B, 3, H, W) (H, E, DAB) of rgb x (B, 3, H, W) in [0, 1]."""
    od = torch.log(x.clamp_min(1e-6)) / math.log(1e-6)  # (B, 3, H, W): 0 at white
    m = torch.tensor(stain.HED_FROM_RGB, dtype=x.dtype, device=x.device)  # (3 rgb, 3 stains)
    return torch.einsum("bchw,cs->bshw", od, m)  # Each pixel's OD row times the matrix.
