"""Batched image transforms that run on the device: a few tensor ops per batch.

A batch arrives from `loader.BatchLoader` as uint8 (B, H, W, 3) (NHWC, as MedMNIST stores
it); `ToFloat` turns it into float32 (B, 3, H, W) in [0, 1]: NCHW in shape, as torch's conv
layers want it, and channels_last in memory, which is the NHWC bytes reinterpreted (no
copy of the layout per batch). `NormalizeUint8` fuses the cast with Normalize.
A transform is a callable `t(x, generator=None) -> Tensor`; the random
ones draw their per-sample decisions on the CPU from `generator` and move the small
decision tensor to `x.device`, so a seed gives the same augmentation on any device.
Spatial transforms accept both layouts: dtype uint8 means NHWC, floating means NCHW.

Source: the torchvision.transforms.v2 API (ToDtype(scale=True), Normalize,
RandomHorizontalFlip, RandomVerticalFlip, Resize(antialias=True), Compose), made batched
with per-sample decisions; the flips and rotations are in pathmnist.augment.dihedral.
Tested against torchvision.transforms.v2.functional (to_dtype, normalize, resize,
horizontal_flip, vertical_flip, rotate) on the same batch with replayed decisions, and
`channel_stats` against numpy's float64 mean and std of the whole array.
"""

from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F

from pathmnist.augment import color, randstainna
from pathmnist.augment import stain as stain_tools  # `stain` is build_transforms' argument.
from pathmnist.augment.dihedral import RandomDihedral
from pathmnist.augment.randaugment import RandAugment
from pathmnist.checks import batch_layout
from pathmnist.device import PerDevice
from pathmnist.errors import PathMNISTError


class ToFloat:
    """uint8 (B, H, W, 3) in [0, 255] -> float32 (B, 3, H, W) in [0, 1], channels_last.

    permute(0, 3, 1, 2) of an NHWC tensor is an NCHW view whose memory is already
    channels_last, the layout the convolutions want (bf16 and cuDNN kernels): keeping it
    avoids copying every batch to NCHW and back. The logical shape is NCHW as usual."""

    def __call__(self, x, generator=None):
        if batch_layout(x, "ToFloat") != (1, 2):
            raise PathMNISTError(f"ToFloat got {x.dtype}; pass the uint8 (B, H, W, 3) batch.")
        # One pass: the cast and torchvision's to_dtype(scale=True) factor 1 / 255.
        return torch.mul(x.permute(0, 3, 1, 2), 1.0 / 255)  # (B, 3, H, W) float32

    def __repr__(self):
        return "ToFloat()"


def _three(values, what):
    """Three finite floats, one per RGB channel, from one number or three."""
    try:
        out = np.broadcast_to(np.asarray(values, dtype=np.float64).reshape(-1), (3,))
    except (TypeError, ValueError):
        out = np.full(3, np.nan)
    if not np.isfinite(out).all():
        raise PathMNISTError(
            f"Normalize got {what}={values!r}; pass one finite number or three (one per RGB "
            "channel)."
        )
    return tuple(out.tolist())


class Normalize:
    """(x - mean) / std per channel on float (B, 3, H, W); `inverse` undoes it."""

    def __init__(self, mean, std):
        self.mean, self.std = _three(mean, "mean"), _three(std, "std")
        if min(self.std) <= 0:
            raise PathMNISTError(
                f"Normalize got std={self.std}; every standard deviation must be > 0."
            )
        # (3, 1, 1) broadcasts over (B, 3, H, W), as torchvision's normalize does.
        self._tensors = PerDevice(
            *(torch.tensor(v, dtype=torch.float64).view(-1, 1, 1) for v in (self.mean, self.std))
        )

    def _stats(self, x, name):
        batch_layout(x, name)
        if not x.is_floating_point():
            raise PathMNISTError(
                f"{name} got a {x.dtype} batch; apply ToFloat first to get float (B, 3, H, W)."
            )
        return self._tensors(x.device, x.dtype)  # (mean, std), each (3, 1, 1)

    def __call__(self, x, generator=None):
        mean, std = self._stats(x, "Normalize")
        return x.sub(mean).div_(std)

    def mean_std(self):
        """The (mean, std) triples."""
        return self.mean, self.std

    def inverse(self, x):
        """x * std + mean: back to [0, 1] units, e.g. to show a normalized batch."""
        mean, std = self._stats(x, "Normalize.inverse")
        return x.mul(std).add_(mean)

    def __repr__(self):
        mean = ", ".join(f"{v:.4f}" for v in self.mean)
        std = ", ".join(f"{v:.4f}" for v in self.std)
        return f"Normalize(mean=({mean}), std=({std}))"


class NormalizeUint8:
    """ToFloat and Normalize in one pass: uint8 (B, H, W, 3) -> normalised float32
    (B, 3, H, W), channels_last. (x / 255 - mean) / std = x * scale + bias with
    scale = 1 / (255 std) and bias = -mean / std, computed by one `addcmul` that reads the
    uint8 bytes and writes float32 once (four passes with the two separate transforms)."""

    def __init__(self, mean, std):
        self.normalize = Normalize(mean, std)  # Checks the numbers; `inverse` comes from it.
        m, s = (torch.tensor(v, dtype=torch.float64) for v in self.normalize.mean_std())
        bias, scale = (-m / s), 1 / (255 * s)  # In float64, rounded once to float32.
        self._tensors = PerDevice(bias.view(1, 3, 1, 1), scale.view(1, 3, 1, 1))

    def __call__(self, x, generator=None):
        if batch_layout(x, "NormalizeUint8") != (1, 2):
            raise PathMNISTError(
                f"NormalizeUint8 got {x.dtype}; pass the uint8 (B, H, W, 3) batch."
            )
        bias, scale = self._tensors(x.device, torch.float32)
        return torch.addcmul(bias, x.permute(0, 3, 1, 2), scale)  # (B, 3, H, W) float32

    def inverse(self, x):
        """Back to [0, 1] units, as Normalize.inverse."""
        return self.normalize.inverse(x)

    def __repr__(self):
        return f"NormalizeUint8({self.normalize!r})"


def channel_stats(imageset, chunk_size=4096):
    """Per-channel mean and (population) std of a split's images, in [0, 1] units.

    `imageset` is an ImageSet (its `.images`, uint8 (N, H, W, 3)) or such an array.
    A uint8 channel has only 256 values, so its histogram holds everything the mean and
    std need: the counts are summed chunk by chunk in int64 (exact, so every chunk size
    gives the same answer) and the moments are taken from the 256 bins in float64.
    Memory is one uint8 channel of one chunk, never a float copy of the split.
    """
    images = getattr(imageset, "images", imageset)
    shape = tuple(getattr(images, "shape", ()))
    if getattr(images, "dtype", None) != np.uint8 or len(shape) != 4 or shape[-1] != 3:
        raise PathMNISTError(
            f"channel_stats got images of dtype {getattr(images, 'dtype', type(images))} "
            f"and shape {shape}; pass an ImageSet with uint8 images (N, H, W, 3)."
        )
    if len(images) == 0:
        raise PathMNISTError("channel_stats got an empty split; pass at least one image.")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise PathMNISTError(f"channel_stats got chunk_size={chunk_size!r}; pass an int >= 1.")
    counts = torch.zeros(3, 256, dtype=torch.int64)
    for start in range(0, len(images), chunk_size):
        chunk = images[start : start + chunk_size]  # (n, H, W, 3) view, no copy
        for c in range(3):
            channel = torch.from_numpy(np.asarray(chunk[..., c]).copy().reshape(-1))  # uint8
            counts[c] += torch.bincount(channel, minlength=256)
    counts = counts.to(torch.float64)  # exact: counts stay far below 2**53
    values = torch.arange(256, dtype=torch.float64) / 255
    n = counts.sum(dim=1)  # (3,)
    mean = (counts * values).sum(dim=1) / n
    var = (counts * (values - mean[:, None]) ** 2).sum(dim=1) / n  # two-pass: no cancellation
    return tuple(mean.tolist()), tuple(var.sqrt().tolist())


class Resize:
    """Bilinear resize with antialiasing (torchvision v2's default) to (size, size), or
    to (h, w) when size is a pair. Unlike torchvision, an int means a square output.

    Float NCHW is interpolated directly; uint8 NHWC goes through float32 and is rounded
    back, the path torchvision takes on the GPU (on the CPU torchvision uses a native
    uint8 kernel that can differ by 1 in a pixel value).
    """

    def __init__(self, size):
        pair = (size, size) if isinstance(size, Real) else tuple(np.atleast_1d(size).tolist())
        if len(pair) != 2 or not all(
            isinstance(s, Integral) and not isinstance(s, bool) and s >= 1 for s in pair
        ):
            raise PathMNISTError(
                f"Resize got size={size!r}; pass an int >= 1 or a pair (h, w) of them."
            )
        self.size = (int(pair[0]), int(pair[1]))

    def __call__(self, x, generator=None):
        h, w = batch_layout(x, "Resize")
        if (x.shape[h], x.shape[w]) == self.size:
            return x
        y = x.permute(0, 3, 1, 2).float() if x.dtype == torch.uint8 else x  # (B, 3, H, W)
        y = F.interpolate(y, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        if x.dtype == torch.uint8:
            y = y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)  # (B, h, w, 3)
        return y

    def __repr__(self):
        return f"Resize(size={self.size}, bilinear, antialias=True)"


class Compose:
    """Apply transforms in order, passing the one generator to each."""

    def __init__(self, transforms):
        transforms = list(transforms) if isinstance(transforms, Sequence) else None
        if not transforms or not all(callable(t) for t in transforms):
            raise PathMNISTError(
                "Compose needs a non-empty list of transforms; pass e.g. [ToFloat()]."
            )
        self.transforms = transforms

    def __call__(self, x, generator=None):
        for t in self.transforms:
            x = t(x, generator)
        return x

    def __repr__(self):
        lines = "".join(f"\n    {t}" for t in self.transforms)
        return f"Compose({lines}\n)"


# Every augmentation name config.AUGMENTATIONS accepts, in the order they are applied,
# with where each runs and how it is made from the run's options. "uint8": on the uint8
# (B, H, W, 3) batch before the cast (flips and rotations move bytes, a quarter of
# float32's, and commute with the resize; torchvision's RandAugment ops take uint8);
# "float": on float [0, 1] images, after the Macenko mapping and before Normalize.
# tests/test_transforms.py checks that the table and config.AUGMENTATIONS agree.
def _jitter(preset, channels):
    return lambda o: stain_tools.HEDJitter(stain_tools.HED_PRESETS[preset], channels=channels)


def _randstainna(statistics):
    if statistics is None:
        raise PathMNISTError(
            "the randstainna augmentation needs the training split's stain statistics; pass "
            "randstain=randstainna.fit(train.images)."
        )
    return randstainna.RandStainNA(statistics)


AUGMENTATION_TABLE = {
    "flips": ("uint8", lambda o: RandomDihedral()),
    "randaugment": ("uint8", lambda o: RandAugment(*o["randaugment"])),
    # hed-*: all three stains; he-*: H and E only, DAB left as it is.
    **{
        f"{kind}-{preset}": ("float", _jitter(preset, channels=len(kind)))
        for kind in ("hed", "he")
        for preset in ("faint", "light", "strong")
    },
    "randstainna": ("float", lambda o: _randstainna(o["randstain"])),
    "color": ("float", lambda o: color.ColorJitter(**color.COLOR_PRESET)),
}


def build_transforms(
    mean, std, augment=(), size=None, stain=None, randaugment=(2, 9), randstain=None
):
    """(train_tf, eval_tf) for uint8 (B, H, W, 3) batches.

    eval: ToFloat, Resize (when size is given), Macenko normalisation to `stain` (a dict
    {"stains": (3, 2), "max_conc": (2,)} fitted on the training split, when given),
    Normalize with the train split's channel statistics. train: the same, with the
    augmentations named in `augment` (a TrainConfig's tuple of names, see
    config.AUGMENTATIONS), each made and placed as AUGMENTATION_TABLE says, in its order;
    "randaugment" draws N operations at magnitude M per image, `randaugment=(N, M)`;
    "randstainna" needs `randstain`, the training split's statistics from
    `randstainna.fit`.
    """
    unknown = [n for n in augment if n not in AUGMENTATION_TABLE]
    if isinstance(augment, str) or unknown:
        raise PathMNISTError(
            f"build_transforms got augment={augment!r}; pass a tuple of names from "
            f"{', '.join(AUGMENTATION_TABLE)} (config.parse_augment reads them from text)."
        )
    options = {"randaugment": randaugment, "randstain": randstain}
    made = {"uint8": [], "float": []}
    for name, (where, make) in AUGMENTATION_TABLE.items():
        if name in augment:
            made[where].append(make(options))
    head = [ToFloat()] + ([Resize(size)] if size is not None else [])
    if stain is not None:
        head.append(stain_tools.MacenkoNormalize(stain["stains"], stain["max_conc"]))
    if len(head) == 1 and not made["float"]:  # Nothing between the cast and Normalize: fuse.
        fused = [NormalizeUint8(mean, std)]
        return Compose(made["uint8"] + fused), Compose(fused)
    tail = [Normalize(mean, std)]
    return Compose(made["uint8"] + head + made["float"] + tail), Compose(head + tail)
