"""Batched image transforms that run on the device: a few tensor ops per batch.

A batch arrives from `data.BatchLoader` as uint8 (B, H, W, 3) (NHWC, as MedMNIST stores
it); `ToFloat` turns it into float32 (B, 3, H, W) in [0, 1] (NCHW, as torch's conv
layers want it). A transform is a callable `t(x, generator=None) -> Tensor`; the random
ones draw their per-sample decisions on the CPU from `generator` and move the small
decision tensor to `x.device`, so a seed gives the same augmentation on any device.
Spatial transforms accept both layouts: dtype uint8 means NHWC, floating means NCHW.

Source: the torchvision.transforms.v2 API (ToDtype(scale=True), Normalize,
RandomHorizontalFlip, RandomVerticalFlip, Resize(antialias=True), Compose), made batched
with per-sample decisions; 90-degree rotations as the dihedral augmentation of
histology (Veeling et al. 2018, "Rotation Equivariant CNNs for Digital Pathology").
Tested against torchvision.transforms.v2.functional (to_dtype, normalize, resize,
horizontal_flip, vertical_flip, rotate) on the same batch with replayed decisions, and
`channel_stats` against numpy's float64 mean and std of the whole array.
"""

from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F

from pathmnist.errors import PathMNISTError


def _layout(x, name):
    """Return the (H, W) dims of a batch: uint8 is NHWC, floating is NCHW."""
    if not isinstance(x, torch.Tensor):
        raise PathMNISTError(f"{name} got a {type(x).__name__}; pass a torch.Tensor batch.")
    if x.dtype == torch.uint8 and x.ndim == 4 and x.shape[-1] == 3:
        return 1, 2  # (B, H, W, 3)
    if x.is_floating_point() and x.ndim == 4 and x.shape[1] == 3:
        return 2, 3  # (B, 3, H, W)
    raise PathMNISTError(
        f"{name} got a {x.dtype} tensor of shape {tuple(x.shape)}; pass uint8 (B, H, W, 3) "
        "or float (B, 3, H, W)."
    )


def _check_p(p, name):
    if isinstance(p, bool) or not isinstance(p, Real) or not 0.0 <= p <= 1.0:
        raise PathMNISTError(f"{name} got p={p!r}; pass a probability in [0, 1].")
    return float(p)


def _check_generator(generator, name):
    if generator is not None and generator.device.type != "cpu":
        raise PathMNISTError(
            f"{name} got a generator on {generator.device}; pass a CPU torch.Generator "
            "(decisions are drawn on the CPU so results do not depend on the device)."
        )


def _to_device(decisions, device):
    """A small CPU tensor of decisions on the batch's device, without waiting for the GPU:
    a non_blocking copy from pinned host memory is asynchronous."""
    if device.type == "cuda":
        decisions = decisions.pin_memory()
    return decisions.to(device, non_blocking=True)


def _flip(x, mask, dim, name):
    """Flip along `dim` the samples where the (B,) bool mask is True."""
    mask = torch.as_tensor(mask, device="cpu")
    if mask.dtype != torch.bool or mask.shape != (len(x),):
        raise PathMNISTError(
            f"{name} got a mask of dtype {mask.dtype} and shape {tuple(mask.shape)}; pass a "
            f"bool tensor of shape ({len(x)},)."
        )
    # The mask lives on the CPU, so the CPU knows which samples to touch without asking
    # the GPU. Only the chosen samples are read, flipped and written back.
    chosen = _to_device(mask.nonzero().view(-1), x.device)
    return x.index_copy(0, chosen, x.index_select(0, chosen).flip(dim))


# Functional ops with per-sample decisions: the random transforms call these after
# drawing, and the tests replay the same decisions through torchvision.


def hflip(x, mask):
    """Mirror left-right the samples where the (B,) bool `mask` is True."""
    _, w = _layout(x, "hflip")
    return _flip(x, mask, w, "hflip")


def vflip(x, mask):
    """Mirror top-bottom the samples where the (B,) bool `mask` is True."""
    h, _ = _layout(x, "vflip")
    return _flip(x, mask, h, "vflip")


_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def rot90(x, k, *, _name="rot90"):
    """Rotate sample i by k[i] * 90 degrees counter-clockwise (as torch.rot90 and
    torchvision's rotate(angle=90 * k) do); `k` is an int or an integer (B,) tensor."""
    h, w = _layout(x, _name)
    if x.shape[h] != x.shape[w]:
        raise PathMNISTError(
            f"{_name} got {x.shape[h]}x{x.shape[w]} images; 90-degree rotations need square "
            "images, so resize them to a square first."
        )
    k = torch.as_tensor(k, device="cpu")
    if k.dtype not in _INTEGER_DTYPES or k.ndim > 1 or (k.ndim == 1 and len(k) != len(x)):
        raise PathMNISTError(
            f"rot90 got k of dtype {k.dtype} and shape {tuple(k.shape)}; pass an int or an "
            f"integer tensor of shape ({len(x)},)."
        )
    b, side = len(x), x.shape[h]
    # A quarter turn permutes the side*side pixel positions. Rotating a grid of flat
    # indices gives each of the four permutations; each sample then gathers its pixels
    # through its own row of that table: one gather for the batch, no per-sample loop.
    # (On one CPU thread, 2-9x faster at 28-128 px than selecting among four torch.rot90s.)
    grid = torch.arange(side * side, device=x.device).view(side, side)
    table = torch.stack([torch.rot90(grid, r).reshape(-1) for r in range(4)])  # (4, S*S)
    index = table[_to_device((k.expand(b) % 4).long(), x.device)]  # (B, S*S)
    if x.dtype == torch.uint8:  # (B, S, S, 3): pixels along dim 1 of (B, S*S, 3)
        flat = x.reshape(b, side * side, 3).gather(1, index[:, :, None].expand(-1, -1, 3))
    else:  # (B, 3, S, S): pixels along dim 2 of (B, 3, S*S)
        flat = x.reshape(b, 3, side * side).gather(2, index[:, None, :].expand(-1, 3, -1))
    return flat.view(x.shape)


class ToFloat:
    """uint8 (B, H, W, 3) in [0, 255] -> float32 (B, 3, H, W) in [0, 1]."""

    def __call__(self, x, generator=None):
        if _layout(x, "ToFloat") != (1, 2):
            raise PathMNISTError(f"ToFloat got {x.dtype}; pass the uint8 (B, H, W, 3) batch.")
        # One copy does the layout change and the cast; the scale is torchvision's
        # to_dtype(scale=True): multiply by 1 / 255.
        x = x.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format)
        return x.mul_(1.0 / 255)  # (B, 3, H, W)

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
        self._tensors = {}  # (device, dtype) -> (mean, std), each (3, 1, 1)

    def __getstate__(self):  # Pickle the numbers, not tensors that may live on a GPU.
        return {"mean": self.mean, "std": self.std, "_tensors": {}}

    def _stats(self, x, name):
        _layout(x, name)
        if not x.is_floating_point():
            raise PathMNISTError(
                f"{name} got a {x.dtype} batch; apply ToFloat first to get float (B, 3, H, W)."
            )
        # (3, 1, 1) broadcasts over (B, 3, H, W), as torchvision's normalize does. Built
        # once per device and dtype: a host-to-device copy per batch would make the CPU
        # wait for the GPU at every batch.
        key = (x.device, x.dtype)
        if key not in self._tensors:
            self._tensors[key] = tuple(
                torch.tensor(v, dtype=x.dtype, device=x.device).view(-1, 1, 1)
                for v in (self.mean, self.std)
            )
        return self._tensors[key]

    def __call__(self, x, generator=None):
        mean, std = self._stats(x, "Normalize")
        return x.sub(mean).div_(std)

    def inverse(self, x):
        """x * std + mean: back to [0, 1] units, e.g. to show a normalized batch."""
        mean, std = self._stats(x, "Normalize.inverse")
        return x.mul(std).add_(mean)

    def __repr__(self):
        mean = ", ".join(f"{v:.4f}" for v in self.mean)
        std = ", ".join(f"{v:.4f}" for v in self.std)
        return f"Normalize(mean=({mean}), std=({std}))"


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


class _RandomFlip:
    """Flip each sample with probability p, decided per sample; `_op` says which way."""

    def __init__(self, p=0.5):
        self.p = _check_p(p, type(self).__name__)

    def draw(self, n, generator=None):
        """The (n,) bool CPU mask of samples to flip; the draws a call would make."""
        _check_generator(generator, type(self).__name__)
        return torch.rand(n, generator=generator) < self.p

    def __call__(self, x, generator=None):
        _layout(x, type(self).__name__)
        return self._op(x, self.draw(len(x), generator))

    def __repr__(self):
        return f"{type(self).__name__}(p={self.p})"


class RandomHorizontalFlip(_RandomFlip):
    """Mirror each sample left-right with probability p, decided per sample."""

    _op = staticmethod(hflip)


class RandomVerticalFlip(_RandomFlip):
    """Mirror each sample top-bottom with probability p, decided per sample."""

    _op = staticmethod(vflip)


class RandomRot90:
    """Rotate each sample by k * 90 degrees, k uniform in {0, 1, 2, 3} per sample.

    Tissue on a slide has no up or down, so all four rotations are equally real images.
    """

    def draw(self, n, generator=None):
        """The (n,) int64 CPU tensor of quarter turns; the draws a call would make."""
        _check_generator(generator, "RandomRot90")
        return torch.randint(0, 4, (n,), generator=generator)

    def __call__(self, x, generator=None):
        _layout(x, "RandomRot90")
        return rot90(x, self.draw(len(x), generator), _name="RandomRot90")

    def __repr__(self):
        return "RandomRot90()"


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
        h, w = _layout(x, "Resize")
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


def build_transforms(mean, std, augment=(), size=None, stain=None):
    """(train_tf, eval_tf) for uint8 (B, H, W, 3) batches.

    eval: ToFloat, Resize (when size is given), Macenko normalisation to `stain` (a dict
    {"stains": (3, 2), "max_conc": (2,)} fitted on the training split, when given),
    Normalize with the train split's channel statistics. train: the same, with the
    augmentations named in `augment` (see config.AUGMENTATIONS; True means "flips"): the
    flips and 90-degree rotations run on the uint8 batch, a quarter of the bytes of float32,
    and commute with the resize; the stain and colour jitters run on float [0, 1] images,
    after the Macenko mapping and before Normalize.
    """
    from pathmnist import stain as stain_tools  # Here: stain imports this module.
    from pathmnist.config import parse_augment

    augment = parse_augment(augment)
    head = [ToFloat()] + ([Resize(size)] if size is not None else [])
    if stain is not None:
        head.append(stain_tools.MacenkoNormalize(stain["stains"], stain["max_conc"]))
    jitter = []
    for name in augment:
        if name.startswith("hed-"):
            jitter.append(stain_tools.HEDJitter(stain_tools.HED_PRESETS[name[4:]]))
        elif name == "color":
            jitter.append(stain_tools.ColorJitter(**stain_tools.COLOR_PRESET))
    flips = [RandomHorizontalFlip(), RandomVerticalFlip(), RandomRot90()]
    tail = [Normalize(mean, std)]
    train = (flips if "flips" in augment else []) + head + jitter + tail
    return Compose(train), Compose(head + tail)
