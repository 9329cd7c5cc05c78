"""Tests for pathmnist.augment.color.ColorJitter: each image against torchvision.transforms.v2
.functional's adjust_brightness, adjust_contrast, adjust_saturation and adjust_hue with
the replayed factors (float64 to 1e-12 without hue, float32 to 1e-5 with it), the
factor ranges, identity, range, determinism and bad values."""

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from hypothesis import example, given, settings
from hypothesis import strategies as st
from strategies import float_nchw_batches

from pathmnist.augment import stain
from pathmnist.augment.color import COLOR_PRESET, ColorJitter
from pathmnist.data import synthetic
from pathmnist.errors import PathMNISTError

strengths = st.floats(0, 1.5)
hues = st.floats(0, 0.5)


def replay(jitter, x, seed):
    """torchvision's functional ops, image by image, with the factors `jitter` draws."""
    factors = jitter.draw(len(x), torch.Generator().manual_seed(seed)).tolist()
    out = []
    for image, (b, c, s, h) in zip(x, factors, strict=True):
        image = TF.adjust_brightness(image, b) if jitter.brightness else image
        image = TF.adjust_contrast(image, c) if jitter.contrast else image
        image = TF.adjust_saturation(image, s) if jitter.saturation else image
        out.append(TF.adjust_hue(image, h) if jitter.hue else image)
    return torch.stack(out)


@settings(deadline=None, max_examples=25)
@given(x=float_nchw_batches(), b=strengths, c=strengths, s=strengths, seed=st.integers(0, 99))
@example(x=np.full((2, 3, 3, 3), 0.5, np.float32), b=1.5, c=1.5, s=1.5, seed=0)
def test_matches_torchvision_without_hue(x, b, c, s, seed):
    """Brightness, contrast and saturation equal torchvision's per image (float64, 1e-12)."""
    x = torch.from_numpy(x).double()
    jitter = ColorJitter(b, c, s)
    out = jitter(x, torch.Generator().manual_seed(seed))
    torch.testing.assert_close(out, replay(jitter, x, seed), rtol=0, atol=1e-12)


@settings(deadline=None, max_examples=25)
@given(x=float_nchw_batches(), b=strengths, hue=hues, seed=st.integers(0, 99))
@example(x=np.zeros((1, 3, 2, 2), np.float32), b=0.0, hue=0.5, seed=0)
def test_matches_torchvision_with_hue(x, b, hue, seed):
    """With hue (rgb -> hsv -> rgb in float32, as torchvision) equal to 1e-5."""
    x = torch.from_numpy(x)
    jitter = ColorJitter(brightness=b, saturation=0.3, hue=hue)
    out = jitter(x, torch.Generator().manual_seed(seed))
    torch.testing.assert_close(out, replay(jitter, x, seed), rtol=0, atol=1e-5)


def test_factors_fill_torchvision_ranges():
    """Factors lie in [max(0, 1 - v), 1 + v] and hue in [-h, h], filling the ranges; an
    unused adjustment draws the neutral 1 (hue 0)."""
    f = ColorJitter(brightness=1.5, contrast=0.2, hue=0.1).draw(3000, torch.Generator())
    assert f.shape == (3000, 4) and f.dtype == torch.float64 and f.device.type == "cpu"
    for column, lo, hi in ((0, 0.0, 2.5), (1, 0.8, 1.2), (3, -0.1, 0.1)):
        assert lo <= f[:, column].min() < lo + 0.01 and hi - 0.01 < f[:, column].max() <= hi
    assert (f[:, 2] == 1).all()


@settings(deadline=None, max_examples=25)
@given(x=float_nchw_batches(), seed=st.integers(0, 99))
def test_all_zero_is_the_identity_and_output_stays_in_range(x, seed):
    """ColorJitter() returns the batch unchanged; a strong one stays in [0, 1] and gives
    the same batch for the same seed."""
    x = torch.from_numpy(x)
    assert torch.equal(ColorJitter()(x, torch.Generator().manual_seed(seed)), x)
    strong = ColorJitter(1.0, 1.0, 1.0, 0.5)
    out = strong(x, torch.Generator().manual_seed(seed))
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    assert torch.equal(out, strong(x, torch.Generator().manual_seed(seed)))


def test_preset_is_as_strong_as_hed_light():
    """ColorJitter(**COLOR_PRESET) moves the synthetic H&E pixels as far on average as
    HEDJitter(HED_LIGHT), within 15%."""
    x = torch.from_numpy(synthetic.generate(300, 1, 1, size=32, seed=2)["train_images"])
    x = x.permute(0, 3, 1, 2).double() / 255

    def change(jitter):
        return (jitter(x, torch.Generator().manual_seed(0)) - x).abs().mean().item()

    color, hed = change(ColorJitter(**COLOR_PRESET)), change(stain.HEDJitter(stain.HED_LIGHT))
    assert abs(color / hed - 1) < 0.15, (color, hed)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"brightness": -0.1}, "brightness"),
        ({"contrast": math.nan}, "contrast"),
        ({"saturation": "1"}, "saturation"),
        ({"hue": 0.6}, "hue"),
        ({"hue": -0.1}, "hue"),
    ],
)
def test_bad_values_raise(kwargs, word):
    """Negative, non-finite or non-numeric strengths, and hue outside [0, 0.5], raise
    PathMNISTError naming the parameter."""
    with pytest.raises(PathMNISTError, match=word):
        ColorJitter(**kwargs)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    """On CUDA the same seed gives the CPU's batch to 1e-5."""
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    jitter = ColorJitter(0.3, 0.3, 0.3, 0.1)
    out = jitter(x.cuda(), torch.Generator().manual_seed(1)).cpu()
    torch.testing.assert_close(out, jitter(x, torch.Generator().manual_seed(1)), rtol=0, atol=1e-5)
