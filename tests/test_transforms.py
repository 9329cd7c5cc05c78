"""Tests for pathmnist.augment.transforms and the flips and rotations it builds on
(pathmnist.augment.dihedral): torchvision.transforms.v2.functional as the oracle on the same batch
(random decisions replayed through it), RandomDihedral against the Compose of the three
random transforms, NormalizeUint8 against ToFloat then Normalize, hypothesis properties
for the invariants, numpy float64 for channel_stats, and bad inputs."""

import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from strategies import (
    channel_means,
    channel_stds,
    float_nchw_batches,
    seeds,
    square_uint8_nhwc_batches,
    uint8_nhwc_batches,
)
from torchvision.transforms.v2 import functional as TF

from pathmnist.augment.dihedral import (
    RandomDihedral,
    RandomHorizontalFlip,
    RandomRot90,
    RandomVerticalFlip,
    hflip,
    rot90,
    vflip,
)
from pathmnist.augment.transforms import (
    Compose,
    Normalize,
    NormalizeUint8,
    Resize,
    ToFloat,
    build_transforms,
    channel_stats,
)
from pathmnist.errors import PathMNISTError

MEAN, STD = (0.74, 0.53, 0.71), (0.12, 0.18, 0.13)  # H&E-like: pink, so green is lowest
NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, NO_CUDA])]


def uint8_batch(b=5, h=6, w=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, h, w, 3), dtype=torch.uint8, generator=g)


def float_batch(b=5, h=6, w=6, seed=0):
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def nchw(x):
    """Either layout as NCHW, the layout torchvision's functional ops take."""
    return x.permute(0, 3, 1, 2) if x.dtype == torch.uint8 else x


def per_sample_reference(x, decisions, op):
    """torchvision applied sample by sample with the replayed decisions, in x's layout."""
    out = torch.stack([op(s, d) for s, d in zip(nchw(x), decisions.tolist(), strict=True)])
    return out.permute(0, 2, 3, 1) if x.dtype == torch.uint8 else out


# Oracle tests: torchvision.transforms.v2.functional on the same batch.


def test_to_float_matches_torchvision_to_dtype():
    """ToFloat equals v2 to_dtype(float32, scale=True) after the NHWC -> NCHW permute, and
    its memory is channels_last (the NHWC bytes, no layout copy)."""
    x = uint8_batch(4, 7, 5)
    out = ToFloat()(x)
    expected = TF.to_dtype(x.permute(0, 3, 1, 2), torch.float32, scale=True)
    assert out.shape == (4, 3, 7, 5) and out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert out.min() >= 0 and out.max() <= 1


@settings(deadline=None, max_examples=40)
@given(x=uint8_nhwc_batches(), mean=channel_means, std=channel_stds)
@example(x=np.full((1, 1, 1, 3), 255, np.uint8), mean=[1.0] * 3, std=[0.0625] * 3)
def test_normalize_uint8_equals_to_float_then_normalize(x, mean, std):
    """The fused cast-and-normalise equals torchvision's to_dtype then normalize within
    float32 rounding of a few ulps (|values| <= 16: atol 1e-5), in the same NCHW shape and
    channels_last memory; its inverse brings back [0, 1] units."""
    x = torch.from_numpy(x)
    t = NormalizeUint8(mean, std)
    out = t(x)
    expected = TF.normalize(TF.to_dtype(x.permute(0, 3, 1, 2), torch.float32, scale=True),
                            list(mean), list(std))  # fmt: skip
    assert out.shape == expected.shape and out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(t.inverse(out), ToFloat()(x), rtol=1e-5, atol=1e-5)


def test_normalize_matches_torchvision_and_inverse_undoes_it():
    """Normalize equals v2 normalize; inverse brings the batch back to [0, 1] units."""
    x = float_batch()
    t = Normalize(MEAN, STD)
    torch.testing.assert_close(t(x), TF.normalize(x, list(MEAN), list(STD)), rtol=0, atol=0)
    torch.testing.assert_close(t.inverse(t(x)), x)


@pytest.mark.parametrize(
    ("shape", "size"), [((28, 28), 64), ((64, 64), 28), ((5, 7), (3, 9)), ((1, 1), 4), ((6, 6), 6)]
)
def test_resize_float_matches_torchvision(shape, size):
    """Resize on float NCHW equals v2 resize(bilinear, antialias=True), up and down."""
    x = float_batch(3, *shape)
    hw = [size, size] if isinstance(size, int) else list(size)
    out = Resize(size)(x)
    expected = TF.resize(x, hw, antialias=True)
    assert out.shape == (3, 3, *hw)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("side", "size"), [(28, 64), (64, 28), (5, 3), (1, 4)])
def test_resize_uint8_matches_torchvision(side, size):
    """Resize on uint8 NHWC equals v2 resize through float32 with rounding exactly, and
    v2's native CPU uint8 kernel within one grey level."""
    x = uint8_batch(3, side, side)
    out = Resize(size)(x)
    assert out.shape == (3, size, size, 3) and out.dtype == torch.uint8
    via_float = TF.resize(x.permute(0, 3, 1, 2).float(), [size, size], antialias=True)
    expected = via_float.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    assert torch.equal(out, expected)
    native = TF.resize(x.permute(0, 3, 1, 2), [size, size], antialias=True).permute(0, 2, 3, 1)
    assert (out.int() - native.int()).abs().max() <= 1


@pytest.mark.parametrize("make", [uint8_batch, float_batch], ids=["uint8_nhwc", "float_nchw"])
@pytest.mark.parametrize(
    ("cls", "op"),
    [
        (RandomHorizontalFlip, TF.horizontal_flip),
        (RandomVerticalFlip, TF.vertical_flip),
    ],
)
def test_random_flips_match_torchvision_with_replayed_decisions(make, cls, op):
    """A random flip equals v2's flip applied to exactly the samples its draw() chose."""
    x = make(16, 5, 7)
    t = cls(p=0.5)
    mask = t.draw(len(x), torch.Generator().manual_seed(3))
    assert 0 < mask.sum() < len(x)  # both branches are exercised
    out = t(x, torch.Generator().manual_seed(3))
    expected = per_sample_reference(x, mask, lambda s, m: op(s) if m else s)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("make", [uint8_batch, float_batch], ids=["uint8_nhwc", "float_nchw"])
def test_random_rot90_matches_torchvision_rotate_with_replayed_decisions(make):
    """RandomRot90 equals v2 rotate(angle=90 * k) per sample with the k its draw() chose."""
    x = make(16, 5, 5)
    t = RandomRot90()
    k = t.draw(len(x), torch.Generator().manual_seed(4))
    assert set(k.tolist()) == {0, 1, 2, 3}
    out = t(x, torch.Generator().manual_seed(4))
    expected = per_sample_reference(x, k, lambda s, r: TF.rotate(s, 90.0 * r))
    assert torch.equal(out, expected)


def test_rot90_direction_golden():
    """A quarter turn is counter-clockwise, as torch.rot90 and v2 rotate(90) turn."""
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).expand(1, 3, 2, 2)
    assert rot90(x, 1)[0, 0].tolist() == [[2.0, 4.0], [1.0, 3.0]]
    assert torch.equal(rot90(x, 1), TF.rotate(x, 90.0))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int32, torch.int64])
def test_rot90_takes_any_integer_k(dtype):
    """k of any integer dtype, a Python int, or negative, turns like torch.rot90 does."""
    x = float_batch(4, 5, 5)
    k = torch.tensor([0, 1, 2, 3], dtype=dtype)
    expected = torch.stack([torch.rot90(s, r, dims=(-2, -1)) for r, s in enumerate(x)])
    assert torch.equal(rot90(x, k), expected)
    assert torch.equal(rot90(x, 3), torch.rot90(x, 3, dims=(-2, -1)))
    assert torch.equal(rot90(x, -1), torch.rot90(x, 3, dims=(-2, -1)))


@pytest.mark.parametrize("make", [uint8_batch, float_batch], ids=["uint8_nhwc", "float_nchw"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_dihedral_equals_the_three_transforms_composed(make, seed):
    """RandomDihedral draws what hflip, vflip and rot90 would draw, in that order, and
    gives the same images as their Compose with the same generator; all 8 symmetries
    occur in a batch of 64."""
    x = make(64, 5, 5)
    composed = Compose([RandomHorizontalFlip(), RandomVerticalFlip(), RandomRot90()])
    expected = composed(x, torch.Generator().manual_seed(seed))
    t = RandomDihedral()
    assert torch.equal(t(x, torch.Generator().manual_seed(seed)), expected)
    codes = t.draw(64, torch.Generator().manual_seed(seed))
    assert set((codes % 4).tolist()) == {0, 1, 2, 3} and set((codes // 4).tolist()) == {0, 1, 2, 3}
    assert len({(c % 2, (c // 2) % 2, c // 4) for c in codes.tolist()}) >= 8


def test_draws_have_the_right_frequencies():
    """Flip masks are True about p of the time and the quarter turns are uniform."""
    g = torch.Generator().manual_seed(0)
    assert abs(RandomHorizontalFlip(0.3).draw(20_000, g).float().mean().item() - 0.3) < 0.02
    counts = torch.bincount(RandomRot90().draw(20_000, g), minlength=4) / 20_000
    assert (counts - 0.25).abs().max() < 0.02


# Hypothesis properties.


@settings(deadline=None, max_examples=50)
@given(x=float_nchw_batches(), mean=channel_means, std=channel_stds)
@example(x=np.zeros((1, 3, 1, 1), np.float32), mean=[0.0] * 3, std=[0.0625] * 3)
def test_normalize_then_inverse_is_identity(x, mean, std):
    """inverse(Normalize(x)) gives x back within float32 rounding and leaves x untouched."""
    x = torch.from_numpy(x)
    before = x.clone()
    t = Normalize(mean, std)
    torch.testing.assert_close(t.inverse(t(x)), x, rtol=1e-5, atol=1e-5)
    assert torch.equal(x, before)


@settings(deadline=None, max_examples=50)
@given(x=st.one_of(uint8_nhwc_batches(), float_nchw_batches()), seed=seeds)
@example(x=np.zeros((1, 1, 1, 3), np.uint8), seed=0)
def test_flip_twice_is_identity(x, seed):
    """The same flip decisions applied twice give the batch back, in either layout."""
    x = torch.from_numpy(x)
    mask = torch.rand(len(x), generator=torch.Generator().manual_seed(seed)) < 0.5
    assert torch.equal(hflip(hflip(x, mask), mask), x)
    assert torch.equal(vflip(vflip(x, mask), mask), x)
    flip = RandomHorizontalFlip(p=1.0)
    assert torch.equal(flip(flip(x)), x)


@settings(deadline=None, max_examples=50)
@given(x=st.one_of(square_uint8_nhwc_batches(), float_nchw_batches(square=True)), seed=seeds)
@example(x=np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3), seed=0)
def test_rot90_four_times_is_identity(x, seed):
    """Rotating each sample four times by its own k gives the batch back; k then -k too."""
    x = torch.from_numpy(x)
    k = RandomRot90().draw(len(x), torch.Generator().manual_seed(seed))
    y = x
    for _ in range(4):
        y = rot90(y, k)
    assert torch.equal(y, x)
    assert torch.equal(rot90(rot90(x, k), -k), x)


@settings(deadline=None, max_examples=40)
@given(x=st.one_of(square_uint8_nhwc_batches(), float_nchw_batches(square=True)), seed=seeds)
@example(x=np.zeros((1, 1, 1, 3), np.uint8), seed=0)
def test_random_transforms_keep_shape_dtype_and_are_seeded(x, seed):
    """Every spatial transform keeps shape and dtype; the same seed gives the same output."""
    x = torch.from_numpy(x)
    side = x.shape[1] if x.dtype == torch.uint8 else x.shape[2]
    spatial = [RandomHorizontalFlip(), RandomVerticalFlip(), RandomRot90(), RandomDihedral()]
    for t in [*spatial, Resize(side)]:
        a = t(x, torch.Generator().manual_seed(seed))
        b = t(x, torch.Generator().manual_seed(seed))
        assert a.shape == x.shape and a.dtype == x.dtype
        assert torch.equal(a, b)


@settings(deadline=None, max_examples=40)
@given(x=st.one_of(uint8_nhwc_batches(), float_nchw_batches()), size=st.integers(1, 9))
@example(x=np.zeros((1, 1, 1, 3), np.uint8), size=1)
def test_resize_keeps_layout_and_dtype(x, size):
    """Resize gives (size, size) images in the input's layout and dtype, for any shape."""
    x = torch.from_numpy(x)
    out = Resize(size)(x)
    expected = (len(x), size, size, 3) if x.dtype == torch.uint8 else (len(x), 3, size, size)
    assert out.shape == expected and out.dtype == x.dtype


@settings(deadline=None, max_examples=40)
@given(x=st.one_of(uint8_nhwc_batches(), float_nchw_batches()))
@example(x=np.zeros((1, 1, 1, 3), np.uint8))
def test_p0_is_identity_and_p1_always_flips(x):
    """p=0 never flips a sample and p=1 flips every sample."""
    x = torch.from_numpy(x)
    h, w = (1, 2) if x.dtype == torch.uint8 else (2, 3)
    assert torch.equal(RandomHorizontalFlip(p=0.0)(x), x)
    assert torch.equal(RandomVerticalFlip(p=0.0)(x), x)
    assert torch.equal(RandomHorizontalFlip(p=1.0)(x), x.flip(w))
    assert torch.equal(RandomVerticalFlip(p=1)(x), x.flip(h))


@settings(deadline=None, max_examples=60)
@given(data=st.data(), images=uint8_nhwc_batches(max_batch=10, max_size=6))
@example(data=None, images=np.full((1, 1, 1, 3), 7, np.uint8))
def test_channel_stats_equal_numpy_for_any_chunk_size(data, images):
    """channel_stats equals numpy's float64 mean and std over the whole array, whatever
    the chunk size (1 to N + 3), and takes an ImageSet-like object or the array."""
    n = len(images)
    chunk = 1 if data is None else data.draw(st.integers(1, n + 3), label="chunk_size")
    mean, std = channel_stats(SimpleNamespace(images=images), chunk_size=chunk)
    as_float = images.astype(np.float64) / 255
    np.testing.assert_allclose(mean, as_float.mean(axis=(0, 1, 2)), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(std, as_float.std(axis=(0, 1, 2)), rtol=1e-9, atol=1e-12)
    assert (mean, std) == channel_stats(images, chunk_size=n)  # counts are exact
    assert all(isinstance(v, float) for v in mean + std)


def test_channel_stats_of_read_only_memory_map(tmp_path):
    """A read-only memory-mapped split works without a float copy or a warning."""
    images = uint8_batch(9, 4, 4).numpy()
    np.save(tmp_path / "x.npy", images)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    mean, _ = channel_stats(mapped, chunk_size=4)
    np.testing.assert_allclose(mean, images.mean(axis=(0, 1, 2)) / 255, rtol=1e-12)


# The pipeline.


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("augment", [(), ("flips",)])
@pytest.mark.parametrize("size", [None, 12])
def test_build_transforms_pipeline(device, augment, size):
    """build_transforms turns a uint8 NHWC batch into normalized float32 NCHW on the
    batch's device; eval is deterministic and equals ToFloat, Resize, Normalize (fused
    into NormalizeUint8 when nothing sits between the cast and Normalize); train equals
    eval without augmentation and adds one RandomDihedral for "flips"."""
    x = uint8_batch(6, 8, 8).to(device)
    train_tf, eval_tf = build_transforms(MEAN, STD, augment=augment, size=size)
    side = size or 8
    out = train_tf(x, torch.Generator().manual_seed(0))
    assert out.shape == (6, 3, side, side) and out.dtype == torch.float32
    assert out.device.type == device
    ev = eval_tf(x)
    assert torch.equal(ev, eval_tf(x))
    expected = Normalize(MEAN, STD)(Resize(side)(ToFloat()(x)))
    torch.testing.assert_close(ev, expected, rtol=1e-6, atol=1e-5 if size is None else 0)
    if not augment:
        assert torch.equal(out, ev)
    names = ["NormalizeUint8"] if size is None else ["ToFloat", "Resize", "Normalize"]
    assert [type(t).__name__ for t in eval_tf.transforms] == names
    flips = ["RandomDihedral"] if augment else []
    assert [type(t).__name__ for t in train_tf.transforms] == flips + names


def test_augmented_pipeline_equals_decisions_replayed():
    """The train pipeline's augmentation is the three draws, in order, from one generator,
    then the eval pipeline."""
    x = uint8_batch(8, 6, 6)
    train_tf, eval_tf = build_transforms(MEAN, STD, augment=("flips",))
    g = torch.Generator().manual_seed(5)
    h, v, k = (t.draw(len(x), g) for t in train_tf.transforms[0].parts)
    expected = eval_tf(rot90(vflip(hflip(x, h), v), k))
    assert torch.equal(train_tf(x, torch.Generator().manual_seed(5)), expected)


def test_stain_and_colour_jitter_sit_between_resize_and_normalize():
    """hed-light and color run on float [0, 1] images after the resize and before
    Normalize; the eval pipeline has neither."""
    train_tf, eval_tf = build_transforms(MEAN, STD, augment=("flips", "hed-light", "color"),
                                         size=10)  # fmt: skip
    names = [type(t).__name__ for t in train_tf.transforms]
    assert names == ["RandomDihedral", "ToFloat", "Resize", "HEDJitter", "ColorJitter",
                     "Normalize"]  # fmt: skip
    assert [type(t).__name__ for t in eval_tf.transforms] == ["ToFloat", "Resize", "Normalize"]
    out = train_tf(uint8_batch(4, 8, 8), torch.Generator().manual_seed(0))
    assert out.shape == (4, 3, 10, 10) and torch.isfinite(out).all()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("size", [None, 12])
def test_same_seed_same_augmentation_on_cpu_and_cuda(size):
    """Decisions are drawn on the CPU, so a seed augments identically on either device
    (fused and unfused pipelines; float32 kernels may differ in the last bits)."""
    x = uint8_batch(32, 8, 8)
    train_tf, _ = build_transforms(MEAN, STD, augment=("flips",), size=size)
    cpu = train_tf(x, torch.Generator().manual_seed(1))
    cuda = train_tf(x.cuda(), torch.Generator().manual_seed(1))
    assert cuda.is_cuda
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=1e-6, atol=1e-5)


def test_reprs_and_pickling():
    """Transforms print their settings (Compose lists its steps) and pickle round-trip,
    fused or not."""
    train_tf, eval_tf = build_transforms(MEAN, STD, augment=("flips",), size=64)
    text = repr(train_tf)
    assert text.startswith("Compose(\n    RandomDihedral(hflip, vflip, rot90)\n    ToFloat()\n")
    assert "Resize(size=(64, 64)" in text and "Normalize(mean=(0.7400, 0.5300" in text
    assert text.endswith("\n)")
    fused_train, fused_eval = build_transforms(MEAN, STD, augment=("flips",))
    assert repr(fused_eval) == (
        "Compose(\n    NormalizeUint8(Normalize(mean=(0.7400, 0.5300, 0.7100), "
        "std=(0.1200, 0.1800, 0.1300)))\n)"
    )
    x = uint8_batch(2, 4, 4)
    for t in (eval_tf, fused_eval):
        expected = t(x)  # The transforms now hold device tensors; pickling drops them.
        assert torch.equal(pickle.loads(pickle.dumps(t))(x), expected)
    g = torch.Generator().manual_seed(2)
    again = pickle.loads(pickle.dumps(fused_train))(x, torch.Generator().manual_seed(2))
    assert torch.equal(again, fused_train(x, g))


# Bad inputs: one sentence naming what was given and what is needed.


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ToFloat()(float_batch()), "ToFloat got torch.float32"),
        (lambda: ToFloat()(uint8_batch().numpy()), "ToFloat got a ndarray"),
        (lambda: ToFloat()(torch.zeros(2, 4, 4, 1, dtype=torch.uint8)), r"shape \(2, 4, 4, 1\)"),
        (lambda: Normalize(MEAN, STD)(uint8_batch()), "apply ToFloat first"),
        (lambda: Normalize(MEAN, STD)(torch.rand(2, 1, 4, 4)), r"shape \(2, 1, 4, 4\)"),
        (lambda: Normalize(MEAN, STD).inverse(torch.rand(3, 4, 4)), r"shape \(3, 4, 4\)"),
        (lambda: Normalize(MEAN, (0.1, 0.0, 0.1)), "must be > 0"),
        (lambda: Normalize(MEAN, -1.0), "must be > 0"),
        (lambda: Normalize((0.5, 0.5), STD), "mean=.*three"),
        (lambda: Normalize(MEAN, "abc"), "std='abc'"),
        (lambda: Normalize((0.5, float("nan"), 0.5), STD), "finite"),
        (lambda: RandomHorizontalFlip(p=1.5), r"p=1\.5.*\[0, 1\]"),
        (lambda: RandomVerticalFlip(p=-0.1), r"p=-0\.1"),
        (lambda: RandomHorizontalFlip(p=True), "p=True"),
        (lambda: RandomHorizontalFlip()(torch.zeros(2, 4, 4)), r"shape \(2, 4, 4\)"),
        (lambda: RandomRot90()(uint8_batch(2, 4, 6)), "RandomRot90 got 4x6 images.*square"),
        (lambda: RandomDihedral()(uint8_batch(2, 4, 6)), "RandomDihedral got 4x6 images"),
        (lambda: NormalizeUint8(MEAN, STD)(float_batch()), "NormalizeUint8 got torch.float32"),
        (lambda: NormalizeUint8(MEAN, (0.1, 0.0, 0.1)), "must be > 0"),
        (lambda: build_transforms(MEAN, STD, augment=("zoom",)), r"augment=\('zoom',\).*names"),
        (lambda: build_transforms(MEAN, STD, augment="flips"), "augment='flips'.*tuple of names"),
        (lambda: rot90(float_batch(2, 3, 5), 1), "rot90 got 3x5 images"),
        (lambda: rot90(float_batch(2, 3, 3), torch.tensor([1, 2, 3])), r"shape \(2,\)"),
        (lambda: rot90(float_batch(2, 3, 3), 0.5), "integer"),
        (lambda: rot90(float_batch(2, 3, 3), True), "torch.bool"),
        (lambda: hflip(float_batch(2, 3, 3), torch.tensor([True])), r"mask .* shape \(1,\)"),
        (lambda: vflip(uint8_batch(2, 3, 3), torch.tensor([0, 1])), "torch.int64"),
        (lambda: Resize(0), "size=0.*>= 1"),
        (lambda: Resize((8, 8, 8)), r"size=\(8, 8, 8\)"),
        (lambda: Resize(6.5), "size=6.5"),
        (lambda: Resize(None), "size=None"),
        (lambda: Compose([]), "non-empty list"),
        (lambda: Compose([ToFloat(), 3]), "non-empty list of transforms"),
        (lambda: build_transforms(MEAN, STD, size=0), "Resize got size=0"),
        (lambda: channel_stats(np.zeros((2, 4, 4, 3), np.float32)), "uint8 images"),
        (lambda: channel_stats(np.zeros((2, 4, 4), np.uint8)), r"shape \(2, 4, 4\)"),
        (lambda: channel_stats(np.zeros((0, 4, 4, 3), np.uint8)), "empty split"),
        (lambda: channel_stats(np.zeros((2, 4, 4, 3), np.uint8), chunk_size=0), "chunk_size=0"),
    ],
)
def test_bad_input_raises_pathmnist_error(call, match):
    """A user's mistake raises PathMNISTError whose message names what it got."""
    with pytest.raises(PathMNISTError, match=match):
        call()


def test_the_augmentation_table_names_what_config_accepts():
    """Every name a TrainConfig accepts is made by the one table build_transforms reads,
    and nothing else is: parsing happens once (config), dispatch once (the table)."""
    from pathmnist import config
    from pathmnist.augment.transforms import AUGMENTATION_TABLE

    assert list(AUGMENTATION_TABLE) == list(config.AUGMENTATIONS)  # The same order, too.
    assert {where for where, _ in AUGMENTATION_TABLE.values()} <= {"uint8", "float"}
