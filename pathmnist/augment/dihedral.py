"""The dihedral augmentation: flips and 90-degree rotations of image batches, per sample.

Tissue on a slide has no up or down and no left or right, so the 8 symmetries of the square
(4 rotations, each with or without a mirror) are all equally real images (Veeling et al.
2018, "Rotation Equivariant CNNs for Digital Pathology"). The functional ops (`hflip`,
`vflip`, `rot90`) take per-sample decisions; the random transforms draw those decisions on
the CPU from a torch.Generator, so a seed gives the same augmentation on any device.
`RandomDihedral` applies all three with one gather; `views` lists the 8 symmetries of a
batch for test-time augmentation.

Layout conventions shared with pathmnist.augment.transforms: uint8 means NHWC (B, H, W, 3),
floating means NCHW (B, 3, H, W).

Tested against torchvision.transforms.v2.functional (horizontal_flip, vertical_flip,
rotate) with replayed decisions, and RandomDihedral against the Compose of the three.
"""

import functools
from numbers import Real

import torch

from pathmnist.checks import batch_layout, cpu_generator
from pathmnist.device import decisions_to
from pathmnist.errors import PathMNISTError


def _check_p(p, name):
    if isinstance(p, bool) or not isinstance(p, Real) or not 0.0 <= p <= 1.0:
        raise PathMNISTError(f"{name} got p={p!r}; pass a probability in [0, 1].")
    return float(p)


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
    chosen = decisions_to(mask.nonzero().view(-1), x.device)
    return x.index_copy(0, chosen, x.index_select(0, chosen).flip(dim))


# Functional ops with per-sample decisions: the random transforms call these after
# drawing, and the tests replay the same decisions through torchvision.


def hflip(x, mask):
    """Mirror left-right the samples where the (B,) bool `mask` is True."""
    _, w = batch_layout(x, "hflip")
    return _flip(x, mask, w, "hflip")


def vflip(x, mask):
    """Mirror top-bottom the samples where the (B,) bool `mask` is True."""
    h, _ = batch_layout(x, "vflip")
    return _flip(x, mask, h, "vflip")


_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


@functools.lru_cache(maxsize=16)
def _symmetries(side, device):
    """(16, S*S) source index of every pixel under each code h + 2 v + 4 k: a horizontal
    flip if h, then a vertical one if v, then k counter-clockwise quarter turns. Each
    symmetry of the square permutes the S*S pixel positions; flipping and rotating a grid
    of flat indices gives the permutation. Made once per image side and device."""
    grid = torch.arange(side * side, device=device).view(side, side)
    rows = []
    for code in range(16):
        g = grid.flip(1) if code & 1 else grid  # Horizontal flip first,
        g = g.flip(0) if code & 2 else g  # then vertical,
        rows.append(torch.rot90(g, code >> 2).reshape(-1))  # then the rotation.
    return torch.stack(rows)


def _permute(x, h, w, codes, name):
    """Each sample through its own symmetry (`codes`, a (B,) CPU int64 tensor of h + 2 v +
    4 k): one gather for the whole batch, no per-sample loop. (On one CPU thread, 2-9x
    faster at 28-128 px than selecting among four torch.rot90s.)"""
    if x.shape[h] != x.shape[w]:
        raise PathMNISTError(
            f"{name} got {x.shape[h]}x{x.shape[w]} images; 90-degree rotations need square "
            "images, so resize them to a square first."
        )
    b, side = len(x), x.shape[h]
    index = _symmetries(side, x.device)[decisions_to(codes, x.device)]  # (B, S*S)
    if x.dtype == torch.uint8:  # (B, S, S, 3): pixels along dim 1 of (B, S*S, 3)
        flat = x.reshape(b, side * side, 3).gather(1, index[:, :, None].expand(-1, -1, 3))
    else:  # (B, 3, S, S): pixels along dim 2 of (B, 3, S*S)
        flat = x.reshape(b, 3, side * side).gather(2, index[:, None, :].expand(-1, 3, -1))
    return flat.view(x.shape)


def rot90(x, k, *, _name="rot90"):
    """Rotate sample i by k[i] * 90 degrees counter-clockwise (as torch.rot90 and
    torchvision's rotate(angle=90 * k) do); `k` is an int or an integer (B,) tensor."""
    h, w = batch_layout(x, _name)
    k = torch.as_tensor(k, device="cpu")
    if k.dtype not in _INTEGER_DTYPES or k.ndim > 1 or (k.ndim == 1 and len(k) != len(x)):
        raise PathMNISTError(
            f"rot90 got k of dtype {k.dtype} and shape {tuple(k.shape)}; pass an int or an "
            f"integer tensor of shape ({len(x)},)."
        )
    codes = 4 * (k.expand(len(x)) % 4).long()  # Symmetry code h + 2 v + 4 k, no flips.
    return _permute(x, h, w, codes, _name)


class _RandomFlip:
    """Flip each sample with probability p, decided per sample; `_op` says which way."""

    def __init__(self, p=0.5):
        self.p = _check_p(p, type(self).__name__)

    def draw(self, n, generator=None):
        """The (n,) bool CPU mask of samples to flip; the draws a call would make."""
        cpu_generator(generator, type(self).__name__)
        return torch.rand(n, generator=generator) < self.p

    def __call__(self, x, generator=None):
        batch_layout(x, type(self).__name__)
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
        cpu_generator(generator, "RandomRot90")
        return torch.randint(0, 4, (n,), generator=generator)

    def __call__(self, x, generator=None):
        batch_layout(x, "RandomRot90")
        return rot90(x, self.draw(len(x), generator), _name="RandomRot90")

    def __repr__(self):
        return "RandomRot90()"


class RandomDihedral:
    """RandomHorizontalFlip, RandomVerticalFlip and RandomRot90 in one gather.

    It draws exactly what the three would draw, in their order (flip-h mask, flip-v mask,
    quarter turns), so a seed gives the same images as their Compose; but instead of
    copying the batch once per transform, each sample's combined pixel permutation (one of
    the 8 symmetries of the square) is looked up in a table and applied by one gather.
    """

    def __init__(self):
        self.parts = (RandomHorizontalFlip(), RandomVerticalFlip(), RandomRot90())

    def draw(self, n, generator=None):
        """The (n,) symmetry codes h + 2 v + 4 k, from the three transforms' draws."""
        h, v, k = (t.draw(n, generator) for t in self.parts)
        return h.long() + 2 * v.long() + 4 * k

    def __call__(self, x, generator=None):
        h, w = batch_layout(x, "RandomDihedral")
        return _permute(x, h, w, self.draw(len(x), generator), "RandomDihedral")

    def __repr__(self):
        return "RandomDihedral(hflip, vflip, rot90)"


def views(x):
    """The 8 rotations and flips of a float (B, 3, H, W) batch (square images), in the
    order rot90 k = 0..3, then the same after a left-right flip."""
    if x.shape[-1] != x.shape[-2]:
        raise PathMNISTError(
            f"test-time augmentation needs square images, got {x.shape[-2]}x{x.shape[-1]}; "
            "drop --tta or resize with --size."
        )
    rotations = [torch.rot90(x, k, dims=(2, 3)) for k in range(4)]
    return rotations + [torch.flip(r, dims=(3,)) for r in rotations]
