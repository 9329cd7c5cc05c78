"""The nine tissue classes of the synthetic PathMNIST, as maps of stain amounts.

Each class is drawn with the morphology a pathologist names it by, in batched numpy (no
per-image Python), as two float32 maps per image: the amount of haematoxylin (nuclei)
and of eosin (cytoplasm, fibres, mucus) at each pixel. pathmnist.data.synthetic turns them
into colour (its Beer-Lambert stain model) and writes the MedMNIST npz. Building blocks:

* smooth noise: random bytes on a coarse grid, resampled by a Gaussian-kernel matrix
  per axis (two small matmuls per image);
* nuclei: where fine noise exceeds a threshold (irregular dark blobs), cut by fibre
  crests into long thin ones;
* fibres and glands: cosine waves and hexagonal cosine lattices in rotated, noise-warped
  coordinates; 30% of patches get a minority region of a confusable class.

Tested through pathmnist.data.synthetic (tests/test_synthetic.py): mean-RGB nearest-centroid
accuracy below 0.6 (texture, not colour, carries the class), determinism, shapes.
"""

import functools
import math

import numpy as np

# Mixed patches: a minority region drawn from a class that real PathMNIST confuses with it.
CONFUSERS = ((1, 7), (0, 4), (3, 4, 8), (2, 8), (2, 1, 7), (7,), (8, 3), (5, 2, 0), (6, 2, 7))
MIX_FRACTION = 0.3
_N_PARTNERS = np.array([len(c) for c in CONFUSERS])
_PARTNERS = np.array([c + (c[0],) * (3 - len(c)) for c in CONFUSERS])  # (9, 3), padded.


class _Canvas:
    """Random building blocks for `n` images of `size` pixels; lengths are in pixels of a
    64-pixel image (PathMNIST's sizes all show the same field of view)."""

    def __init__(self, rng, n, size):
        self.rng, self.n, self.size = rng, n, size
        self.px = ((np.arange(size) + 0.5) * (64 / size)).astype(np.float32)  # (S,)

    def u(self, lo, hi):
        """One uniform draw per image, shaped (n, 1, 1) to broadcast over pixels."""
        return self.rng.uniform(lo, hi, (self.n, 1, 1)).astype(np.float32)

    def field(self, period):
        """Smooth noise (n, S, S), zero mean, unit std, features about `period` px across:
        uniform noise on a coarse grid resampled by a matmul per axis."""
        n, w = self.n, _resampler(self.size, period)  # w: (c, S)
        c = w.shape[0]
        z = np.frombuffer(self.rng.bytes(n * c * c), np.uint8).reshape(n, c, c)
        a = (z.astype(np.float32) - np.float32(127.5)) @ w  # (n, c, S): grid rows along x.
        # (n, S, c) @ (c, S): the transpose of W^T Z W, a field just as random. Per-image
        # matmuls stay below OpenBLAS's threading threshold: big ones spin extra threads,
        # which on a busy machine (or under our own worker threads) cost 15x more.
        return a.transpose(0, 2, 1) @ w

    def coords(self, warp, period=16.0, only_y=False):
        """Rotated coordinates (x, y), each (n, S, S) px, displaced by smooth noise of
        amplitude `warp` px: the frame of fibres and glands. Fibres need only y."""
        t = self.u(0, np.pi)
        c, s = np.cos(t), np.sin(t)
        x, y = self.px[None, None, :], self.px[:, None][None]
        v = c * y - s * x + warp * self.field(period)
        return v if only_y else (c * x + s * y + warp * self.field(period), v)

    def nuclei(self, period, threshold):
        """Irregular blobs in [0, 1] where a fine field exceeds `threshold` (in std units:
        0 covers about half the image, 1 a sixth, 2 a fiftieth)."""
        return np.clip((self.field(period) - threshold) * 1.5, 0, 1)


@functools.lru_cache(maxsize=64)
def _resampler(size, period):
    """(c, S) weights from c grid nodes, `period` reference px apart, to S pixels: a
    Gaussian of sigma half a node, scaled for a unit-variance field from U(-128, 128) nodes."""
    pos = (np.arange(size) + 0.5) * (64 / size) / period + 1.5  # Pixel centres in node units.
    c = int(np.ceil(64 / period)) + 3
    w = np.exp(-2.0 * (pos[None, :] - np.arange(c)[:, None]) ** 2)
    # Per axis the kernel's energy is sqrt(pi) / 2; uniform bytes have variance 256^2 / 12.
    return (w / np.sqrt(np.sqrt(np.pi) / 2 * 256 / np.sqrt(12))).astype(np.float32)


def _fibres(cv, warp, period, nuc_threshold):
    """Parallel fibres (cosine in warped coordinates) and nuclei cut along fibre crests."""
    y = cv.coords(warp, only_y=True)
    wave = 0.5 + 0.5 * np.cos(2 * np.pi * y / period)  # (n, S, S) in [0, 1].
    crest = wave * wave
    crest *= crest * crest  # wave**6, narrow ridges: nuclei cut by them are long and thin.
    return wave, cv.nuclei(6.0, nuc_threshold) * crest


def _hexagonal(x, y, spacing):
    """Three cosines at 120 degrees, scaled to peaks of 1 on a hexagonal lattice of
    `spacing` px and 0 between them. With C = cos(kx/2), D = cos(k y sqrt(3)/2) the sum
    cos(kx) + 2 C D equals 2 C (C + D) - 1: two cosines instead of three."""
    k = (2 * math.pi / math.sqrt(3)) / spacing  # Half the lattice wavenumber 4 pi / (sqrt(3) d).
    c = np.cos(k * x)
    g = c + np.cos((k * math.sqrt(3)) * y)
    g *= c
    return g * np.float32(2 / 4.5) + np.float32(0.5 / 4.5)  # The sum lies in [-1.5, 3].


def _glands(cv, warp, spacing, size):
    """Hexagonal lattice of glands: g = 1 at gland centres, falls to 0 between them;
    returns soft masks (lumen, epithelium, stroma, basal quarter of the epithelium)."""
    g = _hexagonal(*cv.coords(warp), spacing)
    gland, inner, lumen = (np.clip((g - 1 + f * size) * 8 + 0.5, 0, 1) for f in (1, 0.7, 0.15))
    return lumen, gland - lumen, 1 - gland, gland - inner


def _adipose(cv):
    x, y = cv.coords(cv.u(3, 7), period=20)
    k = 2 * np.pi / cv.u(24, 40)  # Cells 17-28 px wide: two to four fat cells across.
    net = np.cos(k * x) + np.cos(k * y)
    wall = np.clip(1 - np.abs(net) / (k * cv.u(1.0, 1.8)), 0, 1)  # Membranes on the zero set.
    wall *= wall
    h = 0.05 + 0.9 * wall * cv.nuclei(5, 1.0)
    return h, 0.03 + cv.u(0.25, 0.5) * wall + 0.02 * cv.field(12)


def _background(cv):
    smudge = np.clip(cv.field(16) - cv.u(0.5, 2.5), 0, None)  # Faint out-of-focus patches.
    return 0.02 + 0.1 * smudge, 0.02 + 0.02 * cv.field(24) + 0.15 * smudge


def _debris(cv):
    frag = np.clip((cv.field(10) - cv.u(-0.5, 0.8)) * 2, 0, 1)  # Scattered fragments.
    dots = cv.nuclei(2.5, cv.u(1.0, 1.6))  # Karyorrhexis: small dark nuclear debris.
    e = frag * cv.u(0.25, 0.55) * (0.7 + 0.3 * cv.field(4)) + 0.04
    return 0.05 + 0.25 * frag + 0.9 * dots * (0.3 + frag), e


def _lymphocytes(cv):
    # Dense, small, round, dark nuclei: a warped hexagonal lattice of dots, some missing.
    dots = _hexagonal(*cv.coords(cv.u(0.8, 1.6), period=8), cv.u(4.5, 6))
    gaps = np.clip(cv.field(8) + cv.u(1, 2.5), 0, 1)
    nuc = np.clip((dots + 0.1 * cv.field(3) - cv.u(0.3, 0.45)) * 4, 0, 1) * gaps
    return 0.12 + cv.u(0.9, 1.3) * nuc, 0.1 + 0.1 * (1 - nuc)


def _mucus(cv):
    y = cv.coords(cv.u(4, 10), period=24, only_y=True)
    wisp = (0.5 + 0.5 * np.cos(2 * np.pi * y / cv.u(8, 16))) * np.clip(cv.field(12) + 1, 0, 2)
    cells = cv.nuclei(4, 2.0)  # A few floating cells.
    return 0.06 + 0.08 * wisp + 0.6 * cells, 0.04 + 0.07 * wisp


def _smooth_muscle(cv):
    wave, nuc = _fibres(cv, cv.u(0.5, 2.5), cv.u(3.5, 5.5), cv.u(0.25, 0.85))
    return 0.06 + 1.1 * nuc, cv.u(0.45, 0.7) * (0.65 + 0.35 * wave)


def _normal_mucosa(cv):
    _, ep, stroma, basal = _glands(cv, cv.u(0.5, 2.5), cv.u(30, 42), cv.u(0.75, 0.9))
    row = basal * cv.nuclei(2.2, -0.25)  # A neat row of small nuclei at each crypt's base.
    goblet = ep * (1 - basal) * cv.nuclei(3, 0.5)  # Pale mucin vacuoles of goblet cells.
    lamina = stroma * (0.2 + 0.8 * cv.nuclei(2.5, 1.3))
    h = 0.05 + 0.15 * ep + 1.0 * row + lamina - 0.12 * goblet
    return h, 0.04 + 0.3 * ep + 0.3 * stroma - 0.25 * goblet


def _stroma(cv):
    wave, nuc = _fibres(cv, cv.u(3, 7), cv.u(4, 7), cv.u(0.85, 1.65))
    loose = np.clip(cv.field(10) + 1.2, 0, 1)  # Pale gaps between wavy bundles.
    return 0.05 + 0.9 * nuc, cv.u(0.3, 0.55) * (0.25 + 0.75 * wave * wave) * loose + 0.04


def _epithelium(cv):
    lumen, ep, stroma, _ = _glands(cv, cv.u(4, 8), cv.u(20, 32), cv.u(0.8, 0.95))
    nuc = ep * cv.nuclei(3.2, cv.u(-0.4, 0.25))  # Crowded, large, stratified nuclei.
    necrosis = lumen * cv.nuclei(2.5, 1.0)  # "Dirty" lumina with debris.
    h = 0.1 + 0.3 * ep + 1.2 * nuc + 0.7 * necrosis + 0.1 * stroma
    return h, 0.04 + 0.3 * ep + 0.35 * stroma + 0.2 * necrosis


RENDER = (_adipose, _background, _debris, _lymphocytes, _mucus, _smooth_muscle,
          _normal_mucosa, _stroma, _epithelium)  # fmt: skip


def tissue_maps(rng, labels, size):
    """Haematoxylin and eosin maps, each float32 (n, S, S), for `labels`: each class, then
    mixed minority regions."""
    n = len(labels)
    h = np.empty((n, size, size), np.float32)
    e = np.empty_like(h)
    for k in range(9):
        idx = np.flatnonzero(labels == k)
        if idx.size:
            h[idx], e[idx] = RENDER[k](_Canvas(rng, idx.size, size))
    mixed = rng.random(n) < MIX_FRACTION
    pick = rng.random(n)
    partner = _PARTNERS[labels, (pick * _N_PARTNERS[labels]).astype(int)]  # (n,)
    for k in range(9):
        idx = np.flatnonzero(mixed & (partner == k))
        if idx.size:
            cv = _Canvas(rng, idx.size, size)
            hk, ek = RENDER[k](cv)
            m = np.clip((cv.field(20) - cv.u(0.2, 1.8)) * 2, 0, 1)  # Mostly 5-40% of the patch.
            h[idx] += m * (hk - h[idx])
            e[idx] += m * (ek - e[idx])
    return h, e
