"""augment.randstainna: against a numpy transcription of Shen et al.'s equations (HED per
image, Reinhard's map to a drawn template), `fit` against numpy's per-image moments, and
hypothesis properties: the augmented per-image statistics are the drawn targets, the
targets follow the fitted distribution, zero spread gives the mean template, a seed gives
the same batch, bad inputs are refused."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import seeds

from pathmnist.augment import randstainna, stain
from pathmnist.augment.transforms import build_transforms
from pathmnist.errors import PathMNISTError

RGB_FROM_HED = np.array(stain.RGB_FROM_HED)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)
STATS = {
    "mean_mu": [0.08, 0.05, 0.01],
    "std_mu": [0.01, 0.008, 0.002],
    "mean_sigma": [0.05, 0.04, 0.01],
    "std_sigma": [0.005, 0.004, 0.001],
}


def numpy_randstainna(rgb, mu_t, sigma_t):
    """The paper's steps in numpy, float64, one image at a time: rgb (B, 3, H, W) -> HED
    (optical density -ln(rgb) / ln(1e6), times the inverse stain matrix), per channel
    (x - mean) / std * sigma' + mu', back through the stain matrix, clipped to [0, 1]."""
    out = np.empty_like(rgb)
    for i, img in enumerate(rgb):
        od = np.log(np.maximum(img, 1e-6)) / np.log(1e-6)  # (3, H, W)
        hed = np.einsum("chw,cs->shw", od, HED_FROM_RGB)
        mu = hed.mean(axis=(1, 2))
        sd = hed.std(axis=(1, 2))
        new = (hed - mu[:, None, None]) / np.maximum(sd, 1e-6)[:, None, None]
        new = new * sigma_t[i][:, None, None] + mu_t[i][:, None, None]
        log_rgb = np.log(1e-6) * np.einsum("shw,sc->chw", new, RGB_FROM_HED)
        out[i] = np.clip(np.exp(log_rgb), 0, 1)
    return out


def tissue(seed, n=4, size=12):
    """Float64 (n, 3, size, size) images in [0.2, 0.95]: no pixel near a clip."""
    g = np.random.default_rng(seed)
    return torch.from_numpy(g.uniform(0.2, 0.95, (n, 3, size, size)))


def test_equals_a_numpy_transcription_of_the_paper():
    """The transform equals the numpy transcription with the same drawn targets."""
    x = tissue(0)
    t = randstainna.RandStainNA(STATS)
    mu_t, sigma_t = t.draw(len(x), torch.Generator().manual_seed(3))
    got = t(x, torch.Generator().manual_seed(3))
    want = numpy_randstainna(x.numpy(), mu_t.numpy(), sigma_t.numpy())
    np.testing.assert_allclose(got.numpy(), want, atol=1e-10)


def test_fit_is_numpys_per_image_moments():
    """fit's statistics are numpy's mean and std over images of each image's HED mean and
    std (float64, unclipped stains), whatever the chunk size."""
    images = np.random.default_rng(1).integers(0, 256, (9, 10, 10, 3), dtype=np.uint8)
    od = np.log(np.maximum(images / 255.0, 1e-6)) / np.log(1e-6)  # (N, H, W, 3)
    hed = od @ HED_FROM_RGB  # (N, H, W, 3)
    mu, sd = hed.mean(axis=(1, 2)), hed.std(axis=(1, 2))
    got = randstainna.fit(images)
    np.testing.assert_allclose(got["mean_mu"], mu.mean(0), rtol=1e-10)
    np.testing.assert_allclose(got["std_mu"], mu.std(0), rtol=1e-8)
    np.testing.assert_allclose(got["mean_sigma"], sd.mean(0), rtol=1e-10)
    np.testing.assert_allclose(got["std_sigma"], sd.std(0), rtol=1e-8)


@settings(deadline=None, max_examples=25)
@given(seed=seeds)
def test_augmented_statistics_are_the_drawn_targets(seed):
    """In HED, each augmented image's per-channel mean and std are exactly its targets;
    after the trip to RGB and back (no clipping here) they still are, to 1e-9."""
    x = tissue(seed)
    t = randstainna.RandStainNA(STATS)
    mu_t, sigma_t = t.draw(len(x), torch.Generator().manual_seed(seed))
    mu, sd = randstainna.image_stats(t.apply_hed(stain._separate(x), mu_t, sigma_t))
    np.testing.assert_allclose(mu.numpy(), mu_t.numpy(), atol=1e-12)
    np.testing.assert_allclose(sd.numpy(), sigma_t.numpy(), atol=1e-12)
    y = t(x, torch.Generator().manual_seed(seed))
    if 0 < float(y.min()) and float(y.max()) < 1:  # No pixel was clipped.
        mu2, sd2 = randstainna.image_stats(stain._separate(y))
        np.testing.assert_allclose(mu2.numpy(), mu_t.numpy(), atol=1e-9)
        np.testing.assert_allclose(sd2.numpy(), sigma_t.numpy(), atol=1e-9)


def test_targets_follow_the_fitted_distribution():
    """Over 20,000 draws the targets' means and standard deviations are the fitted ones
    (within 5 standard errors and 3%)."""
    t = randstainna.RandStainNA(STATS)
    mu, sigma = t.draw(20_000, torch.Generator().manual_seed(0))
    for got, key in ((mu, "mu"), (sigma, "sigma")):
        mean, sd = np.array(STATS[f"mean_{key}"]), np.array(STATS[f"std_{key}"])
        assert np.all(np.abs(got.mean(0).numpy() - mean) < 5 * sd / np.sqrt(20_000))
        np.testing.assert_allclose(got.std(0).numpy(), sd, rtol=0.03)


@settings(deadline=None, max_examples=25)
@given(seed=seeds)
def test_zero_spread_maps_every_image_to_the_mean_template(seed):
    """With zero spread every image gets the mean template's statistics: Reinhard's
    normalisation to one target."""
    flat = {**STATS, "std_mu": [0.0] * 3, "std_sigma": [0.0] * 3}
    t = randstainna.RandStainNA(flat)
    x = tissue(seed)
    mu_t, sigma_t = t.draw(len(x), torch.Generator().manual_seed(seed))
    assert (mu_t == torch.tensor(STATS["mean_mu"], dtype=torch.float64)).all()
    assert (sigma_t == torch.tensor(STATS["mean_sigma"], dtype=torch.float64)).all()
    mu, sd = randstainna.image_stats(t.apply_hed(stain._separate(x), mu_t, sigma_t))
    np.testing.assert_allclose(mu.numpy(), np.tile(STATS["mean_mu"], (len(x), 1)), atol=1e-12)
    np.testing.assert_allclose(sd.numpy(), np.tile(STATS["mean_sigma"], (len(x), 1)), atol=1e-12)


@settings(deadline=None, max_examples=20)
@given(seed=seeds, n=st.integers(1, 5))
def test_a_seed_gives_the_same_batch_and_float32_works(seed, n):
    """The same generator seed gives the same output; float32 in [0, 1] stays in [0, 1]."""
    x = tissue(seed, n=n).float()
    t = randstainna.RandStainNA(STATS)
    a = t(x, torch.Generator().manual_seed(seed))
    b = t(x, torch.Generator().manual_seed(seed))
    assert torch.equal(a, b) and a.dtype == torch.float32
    assert float(a.min()) >= 0 and float(a.max()) <= 1


def test_build_transforms_wires_it_and_needs_the_fit():
    """ "randstainna" in augment puts the transform in the training pipeline only, and
    without the training split's statistics it is refused with one sentence."""
    train_tf, eval_tf = build_transforms((0.5,) * 3, (0.2,) * 3, ("randstainna",), randstain=STATS)
    assert "RandStainNA" in repr(train_tf) and "RandStainNA" not in repr(eval_tf)
    with pytest.raises(PathMNISTError, match="training split's stain statistics"):
        build_transforms((0.5,) * 3, (0.2,) * 3, ("randstainna",))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: randstainna.fit(np.zeros((2, 4, 4, 3), np.float32)), "uint8 images"),
        (lambda: randstainna.fit(np.zeros((0, 4, 4, 3), np.uint8)), "uint8 images"),
        (lambda: randstainna.RandStainNA({"mean_mu": [0, 0, 0]}), "std_mu"),
        (lambda: randstainna.RandStainNA({**STATS, "std_sigma": [-1, 0, 0]}), "std_sigma"),
        (
            lambda: randstainna.RandStainNA(STATS)(torch.zeros(1, 4, 4, 3, dtype=torch.uint8)),
            "ToFloat",
        ),
    ],
)
def test_bad_inputs_are_refused(call, match):
    with pytest.raises(PathMNISTError, match=match):
        call()
