"""A synthetic PathMNIST: procedural H&E-like tissue patches in the MedMNIST npz format.

PathMNIST (Yang et al. 2023, MedMNIST v2; from Kather et al. 2019, NCT-CRC-HE-100K and
CRC-VAL-HE-7K) cannot be downloaded where this course is built, so this module draws a
stand-in with the same nine classes, label order, npz keys and dtypes. Each class is drawn
with the morphology a pathologist names it by, in batched numpy (no per-image Python):

* smooth noise: random bytes on a coarse grid, resampled by a Gaussian-kernel matrix
  per axis (two small matmuls per image);
* nuclei: where fine noise exceeds a threshold (irregular dark blobs), cut by fibre
  crests into long thin ones;
* fibres and glands: cosine waves and hexagonal cosine lattices in rotated, noise-warped
  coordinates; 30% of patches get a minority region of a confusable class.

Colour follows the Beer-Lambert stain model (Ruifrok & Johnston 2001): per pixel the
optical density is OD = c_H * h + c_E * e + OD_background, and rgb = 255 * exp(-OD), with
per-image random stain vectors and intensities. The test split gets a stain/scanner shift
(`shift`), as PathMNIST's test split comes from another centre.

Tested (tests/test_synthetic.py) against medmnist itself (medmnist.PathMNIST loads the
files) and by properties: mean-RGB nearest-centroid accuracy below 0.6, the shift moves
only the test split, determinism, shapes, CLI, errors. Speed: benchmarks/bench_synthetic.py.
Calibration (measured 2026-11-25, DEFAULT_SIZES at 64x64, the seed's ResNet-18 baseline
of 10 epochs, no augmentation): val 0.956 / test 0.926 (seed 0), val 0.964 / test 0.881
(seed 1); per-epoch numbers in docs/02_synthetic.md.
"""

import argparse
import functools
import math
import numbers
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pathmnist.errors import PathMNISTError
from pathmnist.io import atomic_path

# medmnist.INFO["pathmnist"]["label"] in label order (a test checks it), written out so
# that `python -m pathmnist.synthetic` starts without importing medmnist and torch.
CLASS_NAMES = ("adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle",
               "normal colon mucosa", "cancer-associated stroma",
               "colorectal adenocarcinoma epithelium")  # fmt: skip
SPLITS = ("train", "val", "test")
DEFAULT_SIZES = (2400, 800, 800)  # The lab bench: the 10-epoch baseline runs in < 10 min on CPU.
DEFAULT_SHIFT = 1.0  # 1.0 is the calibrated train-to-test stain shift; 0 switches it off.
VERSION = 1  # Part of the cache name: bump it whenever the images change.
CHUNK = 256  # Images per random stream and per task: 4 MB fields stay in cache.
# Class counts of NCT-CRC-HE-100K (Kather et al. 2019), PathMNIST's train+val source.
COUNTS = np.array([10407, 10566, 11512, 11557, 8896, 13536, 8763, 10446, 14317])
PROPORTIONS = COUNTS / COUNTS.sum()
# Ruifrok & Johnston (2001) optical-density vectors of hematoxylin and eosin (R, G, B).
H_VEC = np.array([0.650, 0.704, 0.286])
E_VEC = np.array([0.072, 0.990, 0.105])
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
# The test split's stain shift per unit of `shift` (OD vector offsets, log intensities):
# hematoxylin bluer and darker, eosin more orange and paler, a yellowish glass, a softer
# focus; within-split variation is smaller than one unit of it.
H_SHIFT, E_SHIFT = np.array([0.13, 0.0, -0.10]), np.array([-0.04, 0.0, 0.14])
LOG_H_SHIFT, LOG_E_SHIFT, BG_SHIFT, BLUR_SHIFT = 0.29, -0.34, np.array([0.0, 0.025, 0.06]), 0.5


def _blur(x, sigma):
    """Gaussian blur of (n, S, S) maps, sigma in pixels of this size, one matmul per axis."""
    i = np.arange(x.shape[-1], dtype=np.float32)
    g = np.exp(-0.5 * ((i[:, None] - i[None]) / sigma) ** 2)
    g /= g.sum(1, keepdims=True)  # Rows sum to one: edges keep their brightness.
    return g @ x @ g.T


def _stain(rng, h, e, shift):
    """Beer-Lambert: OD = c_H * h + c_E * e + background, rgb = 255 * exp(-OD), with
    per-image random stain vectors and intensities; `shift` moves them (test split)."""
    n, size = h.shape[:2]
    hv = H_VEC + rng.normal(0, 0.05, (n, 3)) + shift * H_SHIFT
    ev = E_VEC + rng.normal(0, 0.05, (n, 3)) + shift * E_SHIFT
    hv = np.clip(hv, 0.01, None) / np.linalg.norm(hv, axis=1, keepdims=True)
    ev = np.clip(ev, 0.01, None) / np.linalg.norm(ev, axis=1, keepdims=True)
    thick = rng.normal(0, 0.25, (n, 1))  # Section thickness: both dyes scale together.
    hv *= np.exp(thick + rng.normal(shift * LOG_H_SHIFT, 0.3, (n, 1)))
    ev *= np.exp(thick + rng.normal(shift * LOG_E_SHIFT, 0.3, (n, 1)))
    bg = rng.uniform(0.01, 0.09, (n, 1)) + rng.normal(0, 0.01, (n, 3)) + shift * BG_SHIFT
    if shift > 0:
        sigma = BLUR_SHIFT * shift * size / 64
        h, e = _blur(h, sigma), _blur(e, sigma)
    np.maximum(h, 0, out=h)  # Concentrations are never negative, so OD >= 0 and rgb <= 255.
    np.maximum(e, 0, out=e)
    # Sensor noise: OD + U(0, 0.03), about 4 grey levels, from cheap random bytes.
    noise = np.frombuffer(rng.bytes(h.size), np.uint8).reshape(h.shape) * np.float32(0.03 / 255)
    gain = (255 * np.exp(-np.maximum(bg, 0))).astype(np.float32)  # Glass: (n, 3)
    hv, ev = hv.astype(np.float32), ev.astype(np.float32)
    out = np.empty((n, size, size, 3), np.uint8)
    for c in range(3):  # One colour plane at a time keeps the arrays small and contiguous.
        od = np.multiply(h, -hv[:, c, None, None])  # Negative OD: exp(od) is transmittance.
        od -= e * ev[:, c, None, None]
        od -= noise
        np.exp(od, out=od)
        od *= gain[:, c, None, None]
        out[..., c] = od  # In (0, 255]: the cast truncates.
    return out


def _render(rng, labels, size, shift):
    """uint8 images (n, S, S, 3) for `labels`: each class, then mixed minority regions."""
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
    return _stain(rng, h, e, shift)


def _labels(rng, n):
    """n labels in NCT-CRC-HE-100K proportions (largest remainder), shuffled."""
    counts = np.floor(n * PROPORTIONS).astype(int)
    counts[np.argsort(counts - n * PROPORTIONS)[: n - counts.sum()]] += 1
    return rng.permutation(np.repeat(np.arange(9), counts)).astype(np.uint8)


def _check(name, value, low, real=False):
    """`value` if it is an integer (a finite number if `real`) >= low, else PathMNISTError."""
    kind = numbers.Real if real else numbers.Integral
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value < math.inf:
        what = "a number" if real else "an integer"
        raise PathMNISTError(f"{name} must be {what} >= {low}, got {value!r}; pass one.")
    return float(value) if real else int(value)


def generate(n_train, n_val, n_test, size=64, seed=0, shift=DEFAULT_SHIFT, progress=False,
             workers=None):  # fmt: skip
    """The six MedMNIST arrays: `{split}_images` uint8 (N, size, size, 3) and
    `{split}_labels` uint8 (N, 1); only the test split gets the stain `shift`.

    Every split has its own seed stream (SeedSequence spawn key), split again per chunk
    of CHUNK images, so no split depends on another's size and the result does not
    depend on `workers`, the threads that render chunks (numpy releases the GIL)."""
    counts = [_check(f"n_{s}", v, 1) for s, v in zip(SPLITS, (n_train, n_val, n_test), strict=True)]
    size, seed = _check("size", size, 16), _check("seed", seed, 0)
    shift = _check("shift", shift, 0, real=True)
    arrays, jobs = {}, []
    for i, (split, n) in enumerate(zip(SPLITS, counts, strict=True)):
        streams = np.random.SeedSequence(seed, spawn_key=(i,)).spawn(1 + -(-n // CHUNK))
        labels = _labels(np.random.default_rng(streams[0]), n)
        images = np.empty((n, size, size, 3), np.uint8)  # Preallocated: memory ~ output.
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels[:, None]
        s = shift if split == "test" else 0.0
        starts = range(0, n, CHUNK)
        jobs += [(images[a : a + CHUNK], labels[a : a + CHUNK], q, s)
                 for a, q in zip(starts, streams[1:], strict=True)]  # fmt: skip

    def render(job):
        out, part, stream, s = job
        out[:] = _render(np.random.default_rng(stream), part, size, s)
        return len(part)

    if workers is None:  # The cores this process may use (Linux), else all of them.
        cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        workers = min(len(cores) if cores else os.cpu_count() or 1, 8)
    workers = _check("workers", workers, 1)
    with (
        ThreadPoolExecutor(workers) as pool,
        tqdm(total=sum(counts), unit="img", disable=not progress) as bar,
    ):
        for done in pool.map(render, jobs):
            bar.update(done)
    return arrays


def write_npz(path, arrays):
    """Write `arrays` to `path` as a compressed npz, atomically (pathmnist.io)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # A file object: no ".npz" added.
        np.savez_compressed(f, **arrays)
    return Path(path)


def cache_name(sizes=DEFAULT_SIZES, size=64, seed=0, shift=DEFAULT_SHIFT):
    """A file name that encodes every parameter (and VERSION), e.g.
    synthetic_64_2400-800-800_seed0_shift1_v1.npz."""
    return f"synthetic_{size}_{'-'.join(map(str, sizes))}_seed{seed}_shift{shift:g}_v{VERSION}.npz"


def ensure_synthetic(root, sizes=DEFAULT_SIZES, size=64, seed=0, shift=DEFAULT_SHIFT,
                     progress=False):  # fmt: skip
    """Path of the synthetic npz for these parameters in `root`, generated on first use."""
    if len(sizes) != 3:
        raise PathMNISTError(f"sizes must be (n_train, n_val, n_test), got {sizes!r}; pass three.")
    path = Path(root) / cache_name(sizes, size, seed, shift)
    if not path.exists():
        write_npz(path, generate(*sizes, size=size, seed=seed, shift=shift, progress=progress))
    return path


def main(argv=None):
    """CLI: python -m pathmnist.synthetic --out FILE [...]; returns the exit status."""
    p = argparse.ArgumentParser("python -m pathmnist.synthetic", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="npz file to write")
    for split, n in zip(SPLITS, DEFAULT_SIZES, strict=True):
        p.add_argument(f"--n-{split}", type=int, default=n, help=f"{split} images ({n})")
    p.add_argument("--size", type=int, default=64, help="image side in pixels (64)")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--shift", type=float, default=DEFAULT_SHIFT, help="test stain shift (1.0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    args = p.parse_args(argv)
    start = time.perf_counter()
    try:
        sizes = (args.n_train, args.n_val, args.n_test)
        show = not args.quiet and sys.stderr.isatty()
        arrays = generate(*sizes, size=args.size, seed=args.seed, shift=args.shift, progress=show)
        write_npz(args.out, arrays)
    except PathMNISTError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"wrote {args.out}: {'/'.join(map(str, sizes))} train/val/test images of "
              f"{args.size}x{args.size} in {time.perf_counter() - start:.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
