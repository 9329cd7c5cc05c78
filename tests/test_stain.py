"""Tests for pathmnist.augment.stain: colour deconvolution against skimage.color.rgb2hed / hed2rgb
(float64, 1e-6), HED jitter (identity at sigma 0, replayed draws against skimage, range,
determinism, the presets against Tellez's original), Macenko normalisation against
torchstain's torch backend, blank images, bad values."""

import math
import pickle

import numpy as np
import pytest
import skimage.color
import torch
import torchstain
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import float_nchw_batches

from pathmnist.augment import stain, transforms
from pathmnist.data import synthetic
from pathmnist.errors import PathMNISTError

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def nhwc(x):
    return x.permute(0, 2, 3, 1).numpy()  # (B, H, W, 3)


def nchw(a):
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2)  # (B, 3, H, W)


@st.composite
def stain_batches(draw, low=0.0, high=0.4):
    """float64 stain amounts (B, 3, H, W) in [low, high]: below 0.4 every channel of
    hed_to_rgb stays above 1e-6, so rgb_to_hed inverts it exactly when low >= 0."""
    b, h, w = draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    elements = st.floats(low, high, allow_nan=False)
    return torch.from_numpy(draw(hnp.arrays(np.float64, (b, 3, h, w), elements=elements)))


@pytest.fixture(scope="module")
def tissue():
    """uint8 H&E-like test patches (N, 32, 32, 3), the synthetic set's shifted split."""
    return synthetic.generate(1, 1, 12, size=32, seed=0)["test_images"]


@settings(deadline=None, max_examples=25)
@given(x=float_nchw_batches())
@example(x=np.zeros((1, 3, 1, 1), np.float32))
@example(x=np.ones((1, 3, 2, 2), np.float32))
def test_rgb_to_hed_matches_skimage(x):
    """rgb_to_hed equals skimage.color.rgb2hed on the same float64 images to 1e-6."""
    x = torch.from_numpy(x).double()
    expected = skimage.color.rgb2hed(nhwc(x))
    np.testing.assert_allclose(nhwc(stain.rgb_to_hed(x)), expected, rtol=0, atol=1e-6)


@settings(deadline=None, max_examples=25)
@given(h=stain_batches(low=-0.5, high=1.5))
def test_hed_to_rgb_matches_skimage(h):
    """hed_to_rgb equals skimage.color.hed2rgb, negative and large stains included, to 1e-6."""
    expected = skimage.color.hed2rgb(nhwc(h))
    np.testing.assert_allclose(nhwc(stain.hed_to_rgb(h)), expected, rtol=0, atol=1e-6)


@settings(deadline=None, max_examples=25)
@given(h=stain_batches())
def test_round_trip_where_no_stain_is_clipped(h):
    """Non-negative stains whose rgb stays above 1e-6 come back from rgb_to_hed exactly
    (to 1e-9), and their rgb comes back from hed_to_rgb(rgb_to_hed(rgb))."""
    rgb = stain.hed_to_rgb(h)
    torch.testing.assert_close(stain.rgb_to_hed(rgb), h, rtol=0, atol=1e-9)
    torch.testing.assert_close(stain.hed_to_rgb(stain.rgb_to_hed(rgb)), rgb, rtol=0, atol=1e-9)


def test_round_trip_is_not_exact_where_a_stain_is_negative():
    """A saturated blue-green pixel has a negative haematoxylin amount; rgb_to_hed clips it
    to 0 (as skimage does), so hed_to_rgb does not give the pixel back."""
    rgb = torch.tensor([0.9, 0.2, 0.3], dtype=torch.float64).view(1, 3, 1, 1)
    assert stain._separate(rgb).min() < 0
    assert (stain.hed_to_rgb(stain.rgb_to_hed(rgb)) - rgb).abs().max() > 0.05


@settings(deadline=None, max_examples=25)
@given(x=float_nchw_batches(), seed=st.integers(0, 2**16))
def test_hed_jitter_sigma_zero_is_the_identity(x, seed):
    """sigma 0 gives back any float32 image up to the round trip's rounding (1e-5; 0 comes
    back as skimage's floor 1e-6)."""
    x = torch.from_numpy(x)
    out = stain.HEDJitter(0)(x, torch.Generator().manual_seed(seed))
    torch.testing.assert_close(out, x, rtol=0, atol=1e-5)


@settings(deadline=None, max_examples=25)
@given(h=stain_batches(), sigma=st.floats(0, 1), seed=st.integers(0, 2**16))
@example(h=torch.full((2, 3, 2, 2), 0.2, dtype=torch.float64), sigma=1.0, seed=0)
def test_hed_jitter_matches_skimage_with_replayed_draws(h, sigma, seed):
    """Each image equals skimage's hed2rgb(rgb2hed(image) * scale + shift) with the draws
    replayed from the same seed (float64, 1e-9), on images rgb2hed does not clip."""
    x = stain.hed_to_rgb(h)
    jitter = stain.HEDJitter(sigma)
    out = jitter(x, torch.Generator().manual_seed(seed))
    scale, shift = jitter.draw(len(x), torch.Generator().manual_seed(seed))
    hed = skimage.color.rgb2hed(nhwc(x)) * scale[:, None, None].numpy()
    hed += shift[:, None, None].numpy()
    np.testing.assert_allclose(nhwc(out), skimage.color.hed2rgb(hed), rtol=0, atol=1e-9)


@settings(deadline=None, max_examples=25)
@given(x=float_nchw_batches(), sigma=st.floats(0, 1), seed=st.integers(0, 2**16))
@example(x=np.zeros((2, 3, 2, 2), np.float32), sigma=1.0, seed=0)
def test_hed_jitter_stays_in_range_and_repeats_from_the_seed(x, sigma, seed):
    """Output is float (B, 3, H, W) in [0, 1]; the same generator state gives the same batch."""
    x = torch.from_numpy(x)
    jitter = stain.HEDJitter(sigma)
    out = jitter(x, torch.Generator().manual_seed(seed))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert 0 <= out.min() and out.max() <= 1
    assert torch.equal(out, jitter(x, torch.Generator().manual_seed(seed)))


def test_hed_jitter_draws_in_tellez_ranges():
    """draw(n) gives (n, 3) scales in [1 - sigma, 1 + sigma] and shifts in [-sigma, sigma],
    filling the ranges, on the CPU; another seed draws other values."""
    jitter = stain.HEDJitter(0.2)
    scale, shift = jitter.draw(2000, torch.Generator().manual_seed(0))
    assert scale.shape == shift.shape == (2000, 3) and scale.device.type == "cpu"
    assert 0.8 <= scale.min() < 0.81 and 1.19 < scale.max() <= 1.2
    assert -0.2 <= shift.min() < -0.19 and 0.19 < shift.max() <= 0.2
    other, _ = jitter.draw(2000, torch.Generator().manual_seed(1))
    assert not torch.equal(scale, other)


def tellez_original(rgb, sigma, rng):
    """Tellez et al.'s HED augmentation as published (float rgb (N, H, W, 3)), on
    skimage < 0.19's stain space: stains = -ln(rgb + 2) @ hed_from_rgb, and back."""
    hed = -np.log(rgb + 2) @ np.array(stain.HED_FROM_RGB)
    draws = rng.uniform(-sigma, sigma, (2, len(rgb), 1, 1, 3))  # scale - 1, then shift
    hed = hed * (1 + draws[0]) + draws[1]
    return np.clip(np.exp(-hed @ np.array(stain.RGB_FROM_HED)) - 2, 0, 1)


@pytest.mark.parametrize(("name", "sigma"), [("light", 0.05), ("strong", 0.2)])
def test_presets_move_pixels_as_far_as_tellez(name, sigma):
    """HED_PRESETS["light"] / ["strong"] change H&E pixels by the same mean absolute amount
    as Tellez's HED-light (0.05) / HED-strong (0.2) in their original units, within 15%."""
    rgb = synthetic.generate(300, 1, 1, size=32, seed=2)["train_images"] / 255.0
    theirs = np.abs(tellez_original(rgb, sigma, np.random.default_rng(0)) - rgb).mean()
    x = nchw(rgb)
    jitter = stain.HEDJitter(stain.HED_PRESETS[name])
    ours = (jitter(x, torch.Generator().manual_seed(0)) - x).abs().mean().item()
    assert abs(ours / theirs - 1) < 0.15, (ours, theirs)


@pytest.mark.parametrize("sigma", [-0.1, 1.5, math.nan, math.inf, "0.1", True])
def test_hed_jitter_rejects_bad_sigma(sigma):
    """sigma outside [0, 1], not finite or not a number raises PathMNISTError naming sigma."""
    with pytest.raises(PathMNISTError, match="sigma"):
        stain.HEDJitter(sigma)


@pytest.mark.parametrize(
    "transform",
    [
        stain.HEDJitter(0.1),
        stain.MacenkoNormalize(torch.ones(3, 2), torch.ones(2)),
        stain.hed_to_rgb,
    ],
)
def test_uint8_batches_need_to_float_first(transform):
    """A uint8 (B, H, W, 3) batch raises PathMNISTError pointing at ToFloat."""
    with pytest.raises(PathMNISTError, match="ToFloat"):
        transform(torch.zeros(2, 4, 4, 3, dtype=torch.uint8))


@pytest.mark.cuda
@CUDA
def test_hed_jitter_on_cuda_repeats_and_matches_cpu():
    """On CUDA the same seed gives the same batch twice, and the CPU's batch to 1e-5."""
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    jitter = stain.HEDJitter(0.2)
    a = jitter(x.cuda(), torch.Generator().manual_seed(1))
    assert torch.equal(a, jitter(x.cuda(), torch.Generator().manual_seed(1)))
    torch.testing.assert_close(
        a.cpu(), jitter(x, torch.Generator().manual_seed(1)), rtol=0, atol=1e-5
    )


def as_torchstain(image):
    return torch.from_numpy(image).permute(2, 0, 1)  # (3, H, W) uint8, as torchstain takes it


def test_fit_matches_torchstain(tissue):
    """fit_macenko on one image gives torchstain's HERef and maxCRef (float32, 1e-4); on
    several, those of torchstain's fit on their mosaic; uint8 numpy, uint8 tensor and
    float batch inputs agree."""
    for images in (tissue[:1], tissue[2:6]):
        ref = torchstain.normalizers.MacenkoNormalizer(backend="torch")
        ref.fit(as_torchstain(np.concatenate(list(images), axis=1)))  # side by side
        for given_ in (images, torch.from_numpy(images), nchw(images).float() / 255):
            stains, max_conc = stain.fit_macenko(given_)
            assert stains.shape == (3, 2) and max_conc.shape == (2,)
            torch.testing.assert_close(stains, ref.HERef, rtol=0, atol=1e-4)
            torch.testing.assert_close(max_conc, ref.maxCRef, rtol=0, atol=1e-4)


def test_fit_strides_beyond_max_fit_pixels(tissue, monkeypatch):
    """With more than MAX_FIT_PIXELS pixels, fit_macenko fits every k-th pixel: the same
    target as fitting those pixels alone."""
    monkeypatch.setattr(stain, "MAX_FIT_PIXELS", 1000)
    pixels = tissue.reshape(-1, 3)  # 12,288 pixels: every 13th is kept.
    expected = stain.fit_macenko(pixels[::13].reshape(1, -1, 1, 3))
    for got, want in zip(stain.fit_macenko(tissue), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_normalize_matches_torchstain(tissue):
    """Each image of a batch normalised to a target equals torchstain's
    normalize(I, stains=False) (which truncates to integers) to within that one grey level:
    0 <= 255 x - theirs < 1, give or take 0.02 for float32 rounding."""
    target = stain.fit_macenko(tissue[:1])
    ref = torchstain.normalizers.MacenkoNormalizer(backend="torch")
    ref.fit(as_torchstain(tissue[0]))
    od = -np.log((tissue + 1.0) / 240)
    images = tissue[(od >= 0.15).all(axis=3).sum(axis=(1, 2)) >= 50]  # torchstain needs tissue.
    assert len(images) >= 6
    out = stain.MacenkoNormalize(*target)(nchw(images).float() / 255)
    for image, mine in zip(images, out, strict=True):
        theirs, _, _ = ref.normalize(I=as_torchstain(image), stains=False)
        diff = mine.permute(1, 2, 0) * 255 - theirs
        assert -0.02 <= diff.min() and diff.max() < 1.02, (diff.min(), diff.max())
        assert mine.min() >= 0 and mine.max() <= 1


def test_blank_images_come_back_unchanged(tissue):
    """Images with fewer than MIN_TISSUE tissue pixels (white, pale glass, torchstain's
    crash case) come back unchanged, and do not disturb the tissue images beside them;
    fit_macenko on them raises PathMNISTError."""
    normalize = stain.MacenkoNormalize(*stain.fit_macenko(tissue[:1]))
    x = nchw(tissue[:3]).double() / 255
    blank = torch.stack([torch.ones(3, 32, 32), torch.full((3, 32, 32), 0.9)]).double()
    blank[1, :, 0, : stain.MIN_TISSUE - 1] = 0.3  # A few dark pixels: still too few.
    out = normalize(torch.cat([blank, x]))
    assert torch.equal(out[:2], blank) and torch.equal(normalize(blank), blank)
    torch.testing.assert_close(out[2:], normalize(x), rtol=0, atol=1e-12)
    assert not torch.equal(out[2:], x)
    with pytest.raises(PathMNISTError, match="tissue"):
        stain.fit_macenko(blank)
    with pytest.raises(PathMNISTError, match="tissue"):
        stain.fit_macenko(np.zeros((0, 28, 28, 3), np.uint8))
    assert normalize(x[:0]).shape == (0, 3, 32, 32)


@settings(deadline=None, max_examples=10)
@given(order=st.permutations(range(5)))
def test_each_image_is_normalised_on_its_own(tissue, order):
    """Normalising a batch equals normalising each image alone (float64, 1e-9), whatever
    the order: the stain estimate is per image."""
    normalize = stain.MacenkoNormalize(*stain.fit_macenko(tissue[:2]))
    x = nchw(tissue[list(order)]).double() / 255
    alone = torch.cat([normalize(x[i : i + 1]) for i in range(len(x))])
    torch.testing.assert_close(normalize(x), alone, rtol=0, atol=1e-9)


def test_stain_transforms_compose_with_the_pipeline(tissue):
    """ToFloat, HED_LIGHT, MacenkoNormalize, Normalize run as one Compose on a uint8 batch."""
    pipeline = transforms.Compose([transforms.ToFloat(), stain.HEDJitter(stain.HED_LIGHT),
                                   stain.MacenkoNormalize(*stain.fit_macenko(tissue)),
                                   transforms.Normalize(0.5, 0.25)])  # fmt: skip
    out = pipeline(torch.from_numpy(tissue), torch.Generator().manual_seed(0))
    assert out.shape == (12, 3, 32, 32) and out.isfinite().all()


def test_half_precision_and_pickling(tissue):
    """A float16 batch is normalised in float32 and returned as float16 (within a grey
    level, 1/255, of the float32 result: float16 rounds the input); a pickled
    normaliser (targets only, no cached device copies) gives the same batch."""
    normalize = stain.MacenkoNormalize(*stain.fit_macenko(tissue[:1]))
    x = nchw(tissue).float() / 255
    expected = normalize(x)
    half = normalize(x.half())
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), expected, rtol=0, atol=1 / 255)
    copy = pickle.loads(pickle.dumps(normalize))
    assert copy._targets._copies == {} and torch.equal(copy(x), expected)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"target_stains": torch.ones(2, 3)}, "shape"),
        ({"target_max_conc": torch.tensor([1.0, 0.0])}, "positive"),
        ({"target_stains": torch.full((3, 2), math.nan)}, "shape"),
        ({"Io": 0}, "Io"),
        ({"alpha": 50}, "alpha"),
        ({"beta": -1}, "beta"),
    ],
)
def test_macenko_rejects_bad_values(kwargs, word):
    """Bad targets or parameters raise PathMNISTError naming the problem."""
    args = {"target_stains": torch.ones(3, 2), "target_max_conc": torch.ones(2), **kwargs}
    with pytest.raises(PathMNISTError, match=word):
        stain.MacenkoNormalize(**args)


@pytest.mark.cuda
@CUDA
def test_macenko_on_cuda_matches_cpu(tissue):
    """On CUDA the normalised batch equals the CPU's to 1e-4 (float32)."""
    normalize = stain.MacenkoNormalize(*stain.fit_macenko(tissue[:1]))
    x = nchw(tissue).float() / 255
    torch.testing.assert_close(normalize(x.cuda()).cpu(), normalize(x), rtol=0, atol=1e-4)


@settings(deadline=None, max_examples=50)
@given(a1=st.floats(-math.pi, math.pi), d=st.floats(-math.pi, math.pi))
@example(a1=0.3, d=0.0)  # Equal angles: rank 1, as for a flat image.
@example(a1=-1.0, d=math.pi)  # Opposite directions: rank 1 too.
@example(a1=0.5, d=1e-9)  # Nearly equal: rank 1 for pinv in float32, not in float64.
def test_closed_form_pinv_equals_torch_pinv(a1, d):
    """_pinv_2x2 of [[cos a1, cos a2], [sin a1, sin a2]] equals torch.linalg.pinv of the
    (3, 2) stains it stands for (the matrix under an orthonormal embedding), in float64
    and float32, singular cases included, to within what the matrix's condition number
    allows either method (SVD or the 2x2 inverse); no SVD runs. Angles whose singular
    value ratio lies within 10x of pinv's cut-off (3 eps) are left out: there either rank
    is a right answer."""
    g = torch.Generator().manual_seed(0)
    q = torch.linalg.qr(torch.randn(3, 2, dtype=torch.float64, generator=g))[0]  # (3, 2)
    a = torch.tensor([a1, a1 + d], dtype=torch.float64)
    r64 = torch.stack([a.cos(), a.sin()])[None]  # (1, 2, 2)
    sv = torch.linalg.svdvals(r64)[0]  # (2,) descending
    for dtype in (torch.float64, torch.float32):
        eps = torch.finfo(dtype).eps
        ratio = float(sv[1] / sv[0])
        if 0.3 * eps < ratio < 30 * eps:
            continue
        r, embed = r64.to(dtype), q.to(dtype)[None]  # embed (1, 3, 2): orthonormal columns
        expected = torch.linalg.pinv(embed @ r)  # (1, 2, 3)
        got = stain._pinv_2x2(r) @ embed.transpose(1, 2)
        cond = 1 / ratio if ratio > 3 * eps else 1.0  # Rank 1: well conditioned.
        tol = 100 * eps * cond * (float(expected.abs().max()) + 1)
        torch.testing.assert_close(got, expected, rtol=0, atol=tol)


def test_hed_jitter_on_h_and_e_only_leaves_dab_alone():
    """channels=2 draws the same numbers as channels=3 but keeps DAB's scale 1 and shift 0,
    so the jittered DAB amounts equal the input's; H and E move as with channels=3."""
    full, he = stain.HEDJitter(0.05), stain.HEDJitter(0.05, channels=2)
    s3, b3 = full.draw(6, torch.Generator().manual_seed(1))
    s2, b2 = he.draw(6, torch.Generator().manual_seed(1))
    assert torch.equal(s2[:, :2], s3[:, :2]) and torch.equal(b2[:, :2], b3[:, :2])
    assert (s2[:, 2] == 1).all() and (b2[:, 2] == 0).all()
    x = torch.rand(6, 3, 8, 8, dtype=torch.float64) * 0.4 + 0.2  # no pixel reaches a clip
    y = he(x, torch.Generator().manual_seed(1))
    torch.testing.assert_close(stain._separate(y)[:, 2], stain._separate(x)[:, 2])
    with pytest.raises(PathMNISTError, match="channels"):
        stain.HEDJitter(0.05, channels=1)
