"""Tests for pathmnist.augment.randaugment against the oracle
torchvision.transforms.v2.functional: every operation on a batch with per-image signed
magnitudes equals torchvision's operation applied image by image with the same parameters
(uint8: max abs diff <= 1; float: 1e-6); a whole call equals a per-image replay of its draw
through torchvision; the operation list and magnitudes are torchvision's; the draw repeats
from the loader's generator; properties (shape, dtype, range) and bad settings."""

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF
from conftest import run_in_process, write_medmnist_npz
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import float_nchw_batches, uint8_nhwc_batches

from pathmnist.augment import randaugment as RA
from pathmnist.augment.transforms import build_transforms
from pathmnist.data.dataset import load_split
from pathmnist.data.loader import BatchLoader
from pathmnist.errors import PathMNISTError

NAMES = [name for name, _ in RA.OPS]
NEAREST = TF.InterpolationMode.NEAREST


def torchvision_op(img, op, v):
    """torchvision's RandAugment._apply_image_or_video_transform, for one (3, H, W) image
    at signed magnitude v (the calls it makes, with fill None)."""
    affine = {"interpolation": NEAREST, "fill": None, "angle": 0.0, "scale": 1.0}
    shear = math.degrees(math.atan(v))
    if op == "ShearX":
        return TF.affine(img, translate=[0, 0], shear=[shear, 0.0], center=[0, 0], **affine)
    if op == "ShearY":
        return TF.affine(img, translate=[0, 0], shear=[0.0, shear], center=[0, 0], **affine)
    if op == "TranslateX":
        return TF.affine(img, translate=[int(v), 0], shear=[0.0, 0.0], **affine)
    if op == "TranslateY":
        return TF.affine(img, translate=[0, int(v)], shear=[0.0, 0.0], **affine)
    if op == "Rotate":
        return TF.rotate(img, angle=v, interpolation=NEAREST, fill=None)
    bound = 255.0 if img.dtype == torch.uint8 else 1.0
    return {
        "Identity": lambda: img,
        "Brightness": lambda: TF.adjust_brightness(img, 1.0 + v),
        "Color": lambda: TF.adjust_saturation(img, 1.0 + v),
        "Contrast": lambda: TF.adjust_contrast(img, 1.0 + v),
        "Sharpness": lambda: TF.adjust_sharpness(img, 1.0 + v),
        "Posterize": lambda: TF.posterize(img, int(v)),
        "Solarize": lambda: TF.solarize(img, bound * v),
        "AutoContrast": lambda: TF.autocontrast(img),
        "Equalize": lambda: TF.equalize(img),
    }[op]()


def images(b=12, h=32, w=32, seed=0):
    """uint8 (B, 3, H, W) with edge cases: a low-contrast image, a constant one, a black one."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8, generator=g)
    x[0] = x[0] // 4 + 100
    x[1] = 7
    x[2] = 0
    return x


def test_ops_and_magnitudes_are_torchvisions():
    """The op list (order included) and every magnitude, at every M, for square and
    non-square images, equal torchvision's _AUGMENTATION_SPACE."""
    space = T.RandAugment._AUGMENTATION_SPACE
    assert NAMES == list(space) and [s for _, s in RA.OPS] == [s for _, s in space.values()]
    for h, w in ((64, 64), (28, 40)):
        for m in range(RA.NUM_BINS):
            ours = RA.magnitudes(m, h, w)
            for k, (fn, _) in enumerate(space.values()):
                mags = fn(RA.NUM_BINS, h, w)
                assert ours[k] == (0.0 if mags is None else float(mags[m]))


@pytest.mark.parametrize("op", NAMES[1:])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("m", [0, 9, 30])
def test_each_op_equals_torchvision_per_image(op, dtype, m):
    """Per-image signed magnitudes (alternating signs), a 32x40 batch: uint8 within one
    grey level (truncations ordered differently), float to 1e-6."""
    x = images(h=32, w=40)
    x = x if dtype == torch.uint8 else x.float() / 255
    k = NAMES.index(op)
    table = RA.magnitudes(m, 32, 40)
    signs = torch.tensor([(-1.0) ** i for i in range(len(x))], dtype=torch.float64)
    mags = table[k] * signs if RA.OPS[k][1] else table[k].expand(len(x)).clone()
    integer = dtype == torch.uint8
    ours = RA.apply_op(x.float(), op, mags, 255.0 if integer else 1.0, integer)
    ref = torch.stack([torchvision_op(x[i], op, float(mags[i])) for i in range(len(x))])
    assert (ours.double() - ref.double()).abs().max() <= (1 if integer else 1e-6)


@pytest.mark.parametrize("integer", [True, False])
def test_a_call_equals_a_replay_of_its_draw_through_torchvision(integer):
    """RandAugment(3, 12) on a uint8 NHWC (or float NCHW) batch equals each image's drawn
    ops applied in order by torchvision (uint8: at most 0.1% of values one level apart)."""
    x = images(b=16, h=32, w=32, seed=1)
    ra = RA.RandAugment(3, 12)
    batch = x.permute(0, 2, 3, 1).contiguous() if integer else x.float() / 255
    out = ra(batch, torch.Generator().manual_seed(7))
    ops, mags = ra.draw(len(x), 32, 32, torch.Generator().manual_seed(7))
    ref = []
    for i in range(len(x)):
        img = x[i] if integer else x[i].float() / 255
        for r in range(3):
            img = torchvision_op(img, NAMES[ops[r, i]], float(mags[r, i]))
        ref.append(img)
    ref = torch.stack(ref)
    if integer:
        assert out.dtype == torch.uint8 and out.shape == batch.shape
        diff = (out.permute(0, 3, 1, 2).int() - ref.int()).abs()
        assert diff.max() <= 1 and (diff > 0).float().mean() <= 1e-3
    else:
        assert (out - ref).abs().max() <= 1e-5


def test_the_draw_follows_torchvisions_rule():
    """Ops uniform over the 14, signed magnitudes negative about half of the time, and the
    unsigned ops never negative (20,000 draws: binomial noise about 0.4%)."""
    ops, mags = RA.RandAugment(2, 9).draw(10_000, 64, 64, torch.Generator().manual_seed(0))
    counts = torch.bincount(ops.reshape(-1), minlength=14).double() / ops.numel()
    assert (counts - 1 / 14).abs().max() < 0.01
    signed = torch.tensor([s for _, s in RA.OPS])[ops]
    assert abs((mags[signed] < 0).double().mean().item() - 0.5) < 0.02
    assert (mags[~signed] >= 0).all()


def test_the_draw_repeats_from_the_generator():
    """The same generator state gives the same batch; the next state another one."""
    x = images().permute(0, 2, 3, 1).contiguous()
    ra, g = RA.RandAugment(), torch.Generator().manual_seed(3)
    first = ra(x, g)
    assert torch.equal(first, ra(x, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, ra(x, g))


def test_the_loader_epoch_fixes_the_augmentation(tmp_path):
    """Through build_transforms and BatchLoader: (seed, epoch) gives the same batches."""
    split = load_split("train", data_file=write_medmnist_npz(tmp_path / "t.npz", size=16))
    train_tf, _ = build_transforms(
        (0.5,) * 3, (0.25,) * 3, ("flips", "randaugment"), None, None, (2, 15)
    )
    assert "RandAugment(num_ops=2, magnitude=15)" in repr(train_tf)

    def epoch_batches():
        loader = BatchLoader(split, 8, shuffle=True, seed=4, transform=train_tf)
        loader.set_epoch(2)
        return [x for x, _ in loader]

    assert all(torch.equal(a, b) for a, b in zip(epoch_batches(), epoch_batches(), strict=True))


@settings(deadline=None, max_examples=25)
@given(x=uint8_nhwc_batches(), n=st.integers(0, 3), m=st.integers(0, 30), seed=st.integers(0, 99))
def test_uint8_batches_keep_shape_dtype_and_layout(x, n, m, seed):
    """Any uint8 (B, H, W, 3) batch, any small image, comes back uint8 of the same shape;
    N = 0 is the identity."""
    x = torch.from_numpy(x)
    y = RA.RandAugment(n, m)(x, torch.Generator().manual_seed(seed))
    assert y.dtype == torch.uint8 and y.shape == x.shape
    if n == 0:
        assert torch.equal(y, x)


@settings(deadline=None, max_examples=25)
@given(x=float_nchw_batches(), m=st.integers(0, 30), seed=st.integers(0, 99))
def test_float_batches_stay_in_unit_range(x, m, seed):
    x = torch.from_numpy(x)
    y = RA.RandAugment(2, m)(x, torch.Generator().manual_seed(seed))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert np.isfinite(y.numpy()).all() and y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize(
    "kw", [{"num_ops": -1}, {"magnitude": 31}, {"magnitude": -1}, {"num_ops": True}]
)
def test_bad_settings_are_one_sentence(kw):
    with pytest.raises(PathMNISTError, match="is not allowed"):
        RA.RandAugment(**kw)


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--randaugment-n", "-1"], "randaugment_n=-1"),
        (["--randaugment-m", "31"], "randaugment_m=31"),
    ],
)
def test_example_refuses_bad_settings(flags, match, tmp_path, capsys):
    """examples/01_baseline.py: one `error:` line, exit status 2, no run folder."""
    args = ["--dataset", "synthetic", "--augment", "randaugment", *flags, "--out", tmp_path / "r"]
    code, err = run_in_process("01_baseline.py", args, capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert match in err and not (tmp_path / "r").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_batch_equals_the_cpu_batch():
    """The same generator gives the same augmentation on the GPU (the GPU's float kernels
    may round a blend one level apart, and a later op may widen that: at most 0.1% of
    values more than one level apart)."""
    x = images(b=32).permute(0, 2, 3, 1).contiguous()
    ra = RA.RandAugment(2, 9)
    cpu = ra(x, torch.Generator().manual_seed(5))
    gpu = ra(x.cuda(), torch.Generator().manual_seed(5)).cpu()
    assert ((cpu.int() - gpu.int()).abs() > 1).float().mean() <= 1e-3
