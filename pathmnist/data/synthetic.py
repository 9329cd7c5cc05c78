"""A synthetic PathMNIST: procedural H&E-like tissue patches in the MedMNIST npz format.

PathMNIST (Yang et al. 2023, MedMNIST v2; from Kather et al. 2019, NCT-CRC-HE-100K and
CRC-VAL-HE-7K) cannot be downloaded where this course is built, so this module draws a
stand-in with the same nine classes, label order, npz keys and dtypes. The tissue of each
class is drawn as maps of haematoxylin and eosin amounts (pathmnist.data.tissue);
this module colours them, shifts the test split, and writes the file.

Colour follows the Beer-Lambert stain model (Ruifrok & Johnston 2001): per pixel the
optical density is OD = c_H * h + c_E * e + OD_background, and rgb = 255 * exp(-OD), with
per-image random stain vectors and intensities. PathMNIST's test split comes from another
centre, so the test split can be shifted, as chosen when the file is made: a stain shift
(`shift`, the default) and/or a scanner shift (`scanner`: Gaussian blur, then JPEG
compression; Ignatov & Malivenko 2024, arXiv 2409.11546, found such image-handling
traces, JPEG artefacts above all, in PathMNIST's source NCT-CRC-HE-100K).

Tested (tests/test_synthetic.py) against medmnist itself (medmnist.PathMNIST loads the
files) and by properties: mean-RGB nearest-centroid accuracy below 0.6, each shift moves
only the test split (the scanner one blurs it and keeps its mean colour), the default
file's bytes are pinned, determinism, shapes, CLI, errors. Speed:
benchmarks/bench_synthetic.py. How hard the set is for the seed's baseline is a
measurement, kept with its run files in docs/results/ and shown in docs/02_synthetic.md.
"""

import argparse
import math
import numbers
import os
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pathmnist.config import LIMITS
from pathmnist.data.tissue import tissue_maps
from pathmnist.errors import PathMNISTError
from pathmnist.files import atomic_path

# medmnist.INFO["pathmnist"]["label"] in label order (a test checks it), written out so
# that `python -m pathmnist.data.synthetic` starts without importing medmnist and torch.
CLASS_NAMES = ("adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle",
               "normal colon mucosa", "cancer-associated stroma",
               "colorectal adenocarcinoma epithelium")  # fmt: skip
SPLITS = ("train", "val", "test")
DEFAULT_SIZES = (2400, 800, 800)  # The lab bench: the 10-epoch baseline runs in < 10 min on CPU.
DEFAULT_SHIFT = 1.0  # 1.0 is the calibrated train-to-test stain shift; 0 switches it off.
DEFAULT_SCANNER = 0.0  # No scanner shift by default: the course's file is stain-shifted only.
VERSION = 1  # Part of the cache name: bump it whenever the images change.
CHUNK = 256  # Images per random stream and per task: 4 MB fields stay in cache.
# Class counts of NCT-CRC-HE-100K (Kather et al. 2019), PathMNIST's train+val source.
COUNTS = np.array([10407, 10566, 11512, 11557, 8896, 13536, 8763, 10446, 14317])
PROPORTIONS = COUNTS / COUNTS.sum()
# Ruifrok & Johnston (2001) optical-density vectors of hematoxylin and eosin (R, G, B).
H_VEC = np.array([0.650, 0.704, 0.286])
E_VEC = np.array([0.072, 0.990, 0.105])
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


# The test split's scanner shift per unit of `scanner`: a Gaussian blur of SCANNER_BLUR px
# at 64x64 (a slightly defocused scanner), then JPEG at quality SCANNER_QUALITY (only the
# test images are compressed); the quality falls linearly from 100 at scanner 0.
SCANNER_BLUR, SCANNER_QUALITY = 1.0, 40


def _scanner(images, scanner):
    """Blur and JPEG-compress uint8 images (n, S, S, 3) in place; `scanner` > 0."""
    import torch  # Here, not at the top: the CLI's --help need not import torch.
    from torchvision.io import decode_jpeg, encode_jpeg

    n, size = images.shape[:2]
    planes = images.transpose(0, 3, 1, 2).reshape(n * 3, size, size).astype(np.float32)
    planes = _blur(planes, SCANNER_BLUR * scanner * size / 64)  # Rows sum to one: same mean.
    planes = np.clip(np.rint(planes), 0, 255).astype(np.uint8).reshape(n, 3, size, size)
    quality = max(5, round(100 - (100 - SCANNER_QUALITY) * scanner))  # Below 5: mush.
    decoded = decode_jpeg(encode_jpeg(list(torch.from_numpy(planes)), quality=quality))
    images[:] = torch.stack(decoded).permute(0, 2, 3, 1).numpy()  # (n, S, S, 3)


def _render(rng, labels, size, shift, scanner):
    """uint8 images (n, S, S, 3) for `labels`: tissue maps, stain, then the scanner."""
    images = _stain(rng, *tissue_maps(rng, labels, size), shift)
    if scanner > 0:  # Deterministic: draws nothing, so the stain and tissue stay the same.
        _scanner(images, scanner)
    return images


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


def generate(n_train, n_val, n_test, size=64, seed=0, shift=DEFAULT_SHIFT,
             scanner=DEFAULT_SCANNER, progress=False, workers=None):  # fmt: skip
    """The six MedMNIST arrays: `{split}_images` uint8 (N, size, size, 3) and
    `{split}_labels` uint8 (N, 1); only the test split gets the stain `shift` and the
    `scanner` shift (either may be 0; the tissue and labels never depend on them).

    Every split has its own seed stream (SeedSequence spawn key), split again per chunk
    of CHUNK images, so no split depends on another's size and the result does not
    depend on `workers`, the threads that render chunks (numpy releases the GIL)."""
    counts = [_check(f"n_{s}", v, 1) for s, v in zip(SPLITS, (n_train, n_val, n_test), strict=True)]
    size, seed = _check("size", size, 16), _check("seed", seed, 0)
    shift, scanner = _check("shift", shift, 0, real=True), _check("scanner", scanner, 0, real=True)
    arrays, jobs = {}, []
    for i, (split, n) in enumerate(zip(SPLITS, counts, strict=True)):
        streams = np.random.SeedSequence(seed, spawn_key=(i,)).spawn(1 + -(-n // CHUNK))
        labels = _labels(np.random.default_rng(streams[0]), n)
        images = np.empty((n, size, size, 3), np.uint8)  # Preallocated: memory ~ output.
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels[:, None]
        s = (shift, scanner) if split == "test" else (0.0, 0.0)
        starts = range(0, n, CHUNK)
        jobs += [(images[a : a + CHUNK], labels[a : a + CHUNK], q, s)
                 for a, q in zip(starts, streams[1:], strict=True)]  # fmt: skip

    def render(job):
        out, part, stream, s = job
        out[:] = _render(np.random.default_rng(stream), part, size, *s)
        return len(part)

    if workers is None:  # The cores this process may use (Linux), else all of them.
        cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        workers = min(len(cores) if cores else os.cpu_count() or 1, 8)
    workers = _check("workers", workers, 1)
    with (
        warnings.catch_warnings(),  # Entered here, not in the threads: not thread-safe.
        ThreadPoolExecutor(workers) as pool,
        tqdm(total=sum(counts), unit="img", disable=not progress) as bar,
    ):
        # torchvision 0.29 deprecates its JPEG codec for TorchCodec, a new dependency;
        # the codec still works, and a user cannot act on the warning.
        warnings.filterwarnings("ignore", "The image decoding and encoding", DeprecationWarning)
        for done in pool.map(render, jobs):
            bar.update(done)
    return arrays


def write_npz(path, arrays):
    """Write `arrays` to `path` as a compressed npz, atomically (pathmnist.files)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # A file object: no ".npz" added.
        np.savez_compressed(f, **arrays)
    return Path(path)


def cache_name(sizes=DEFAULT_SIZES, size=64, seed=0, shift=DEFAULT_SHIFT, scanner=DEFAULT_SCANNER):
    """A file name that encodes every parameter (and VERSION), e.g.
    synthetic_64_2400-800-800_seed0_shift1_v1.npz; a scanner shift adds "_scanner1"
    (so the names of files without one are those of before it existed)."""
    counts, scan = "-".join(map(str, sizes)), f"_scanner{scanner:g}" if scanner else ""
    return f"synthetic_{size}_{counts}_seed{seed}_shift{shift:g}{scan}_v{VERSION}.npz"


def ensure_synthetic(root, sizes=DEFAULT_SIZES, size=64, seed=0, shift=DEFAULT_SHIFT,
                     scanner=DEFAULT_SCANNER, progress=False):  # fmt: skip
    """Path of the synthetic npz for these parameters in `root`, generated on first use."""
    if len(sizes) != 3:
        raise PathMNISTError(f"sizes must be (n_train, n_val, n_test), got {sizes!r}; pass three.")
    shift, scanner = _check("shift", shift, 0, real=True), _check("scanner", scanner, 0, real=True)
    path = Path(root) / cache_name(sizes, size, seed, shift, scanner)
    if not path.exists():
        arrays = generate(*sizes, size=size, seed=seed, shift=shift, scanner=scanner,
                          progress=progress)  # fmt: skip
        write_npz(path, arrays)
    return path


def _check_out(out):
    """Refuse an --out that is a folder or lies under a file, before any work is done."""
    path = Path(out)
    if not str(out).strip():
        raise PathMNISTError("--out is empty; pass a file name, e.g. --out lab.npz.")
    if path.is_dir():
        raise PathMNISTError(f"--out {out} is a folder; pass a file name, e.g. {path / 'lab.npz'}.")
    folder = next((p for p in path.parents if p.exists()), None)
    if folder is not None and not folder.is_dir():
        raise PathMNISTError(f"--out {out} lies under {folder}, a file; pass a path in a folder.")


class _Parser(argparse.ArgumentParser):
    """argparse whose refusal of a bad flag is one `error:` line and exit status 2."""

    def error(self, message):
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def _trainable(sizes, size):
    """Refuse what training on the file would refuse: a training split missing a class
    (each of the 9 needs an image; 9 or more draw every class) or images past TrainConfig's
    largest size."""
    if sizes[0] < len(PROPORTIONS):
        raise PathMNISTError(
            f"--n-train {sizes[0]} cannot hold one image of each of the {len(PROPORTIONS)} "
            f"classes, which training needs; pass --n-train {len(PROPORTIONS)} or more."
        )
    if size > LIMITS["size"]:
        raise PathMNISTError(f"--size {size} is above {LIMITS['size']}; pass a smaller size.")


def main(argv=None):
    """CLI: python -m pathmnist.data.synthetic --out FILE [...]; returns the exit status."""
    p = _Parser("python -m pathmnist.data.synthetic", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="npz file to write")
    for split, n in zip(SPLITS, DEFAULT_SIZES, strict=True):
        p.add_argument(f"--n-{split}", type=int, default=n, help=f"{split} images ({n})")
    p.add_argument("--size", type=int, default=64, help="image side in pixels (64)")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--shift", type=float, default=DEFAULT_SHIFT, help="test stain shift (1.0)")
    scanner_help = "test scanner shift: 1 = blur 1 px at 64x64, JPEG quality 40 (0)"
    p.add_argument("--scanner", type=float, default=DEFAULT_SCANNER, help=scanner_help)
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    args = p.parse_args(argv)
    start = time.perf_counter()
    try:
        sizes = (args.n_train, args.n_val, args.n_test)
        show = not args.quiet and sys.stderr.isatty()
        _check_out(args.out)
        _trainable(sizes, args.size)
        arrays = generate(*sizes, size=args.size, seed=args.seed, shift=args.shift,
                          scanner=args.scanner, progress=show)  # fmt: skip
        write_npz(args.out, arrays)
    except PathMNISTError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # The npz is written atomically: nothing half-written stays.
        print("\ninterrupted: nothing was written; rerun the same command.", file=sys.stderr)
        return 130
    except OSError as err:  # A full disk, no permission: one line, not a traceback.
        print(f"error: could not write {args.out} ({err.strerror}); pick another --out.",
              file=sys.stderr)  # fmt: skip
        return 2
    if not args.quiet:
        print(f"wrote {args.out}: {'/'.join(map(str, sizes))} train/val/test images of "
              f"{args.size}x{args.size} in {time.perf_counter() - start:.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
