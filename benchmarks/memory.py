"""Peak memory of loading a training split and building its BatchLoader, at 64 and 224 px.

Each measurement runs in a fresh Python process (`--child`), so its peak is its own: the
process imports torch and pathmnist, reads the split with `pathmnist.data.dataset.load_split`,
builds a `pathmnist.data.loader.BatchLoader` on the device and draws two batches, then reports

* peak host RSS: `resource.getrusage(RUSAGE_SELF).ru_maxrss` (KiB on Linux), and the
  same right after the imports (and CUDA's start), the floor every run pays;
* peak GPU memory: `torch.cuda.max_memory_allocated` (on CUDA only);
* where the split went (`BatchLoader.on_device`).

The data are MedMNIST-format npz files of PathMNIST's real split sizes (89,996 training
images; medmnist.INFO), written here chunk by chunk into a compressed npz, as
`np.savez_compressed` lays it out, without holding the split in memory. Each image is one
flat colour: content does not change memory, and flat images compress in seconds where
random bytes would take minutes. Each file is loaded twice, in two processes, since a
loader may keep a cache beside the file on its first read.

Target (issue 9): peak host RSS at most the split's bytes + 1.5 GB.

    python benchmarks/memory.py [--sizes 64 224] [--n-train 89996 89996] [--device auto]
        [--out benchmarks/RESULTS.md] [--data-dir DIR]
"""

import argparse
import itertools
import json
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # For the modules beside it.
from _results import RESULTS, write_section

from pathmnist.data.dataset import load_split
from pathmnist.data.loader import BatchLoader
from pathmnist.device import resolve_device

TRAIN_IMAGES = 89_996  # PathMNIST's training split (medmnist.INFO["pathmnist"]["n_samples"]).
SMALL_SPLIT = 9  # val and test: one image per class, enough for load_split's label checks.
GB = 1e9
TARGET_EXTRA = 1.5 * GB  # Bytes of host memory allowed beyond the split itself.
CHUNK_BYTES = 64 << 20  # Images are written 64 MB at a time.


def write_npz(path, n_train, size):
    """A MedMNIST-format npz of flat-colour images, written chunk by chunk (deflate, as
    np.savez_compressed does), so the writer never holds a split in memory."""
    per_image = size * size * 3
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for split, n in (("train", n_train), ("val", SMALL_SPLIT), ("test", SMALL_SPLIT)):
            labels = (np.arange(n) % 9).astype(np.uint8).reshape(n, 1)  # (N, 1) as MedMNIST
            with zf.open(f"{split}_labels.npy", "w") as f:
                np.lib.format.write_array(f, labels)
            header = {"descr": "|u1", "fortran_order": False, "shape": (n, size, size, 3)}
            with zf.open(f"{split}_images.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_1_0(f, header)
                step = max(1, CHUNK_BYTES // per_image)
                for start in range(0, n, step):
                    i = np.arange(start, min(n, start + step))
                    colours = (np.stack([i * 37, i * 91 + 50, i * 13 + 100], 1) % 256).astype(
                        np.uint8
                    )  # (c, 3): one colour per image
                    chunk = np.empty((len(i), size, size, 3), np.uint8)
                    chunk[:] = colours[:, None, None, :]  # (c, H, W, 3)
                    f.write(chunk.data)  # The bytes of the C-contiguous chunk, no copy.
    return Path(path)


def child(path, device_name):
    """Measure one load in this (fresh) process; print a JSON object."""
    device = resolve_device(device_name)
    if device.type == "cuda":
        torch.zeros(1, device=device)  # CUDA's start is part of the floor, not of the split.
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    train = load_split("train", data_file=path)
    loader = BatchLoader(train, 128, shuffle=True, device=device)
    for _ in itertools.islice(loader, 2):  # Two batches: the per-batch path too.
        pass
    if device.type == "cuda":
        torch.cuda.synchronize()
    out = {
        "seconds": time.perf_counter() - start,
        "split_bytes": int(train.images.nbytes),
        "rss_floor": floor,
        "rss_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "gpu_peak": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
        "on_device": bool(loader.on_device) if device.type == "cuda" else None,
    }
    print(json.dumps(out))


def measure(path, device):
    """Run `child` in a fresh interpreter and return its numbers."""
    cmd = [sys.executable, __file__, "--child", str(path), "--device", device]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"measuring {path} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results):
    """Markdown: one row per (size, load)."""
    lines = [
        "| size | train images | split | load | peak host RSS | after imports | peak - split "
        "| target: split + 1.5 GB | within | peak GPU memory | split on GPU | seconds |",
        "|---|---:|---:|---|---:|---:|---:|---:|---|---:|---|---:|",
    ]
    for size, n, load, r in results:
        split, peak = r["split_bytes"], r["rss_peak"]
        gpu = f"{r['gpu_peak'] / GB:.2f} GB" if r["gpu_peak"] is not None else "-"
        where = {None: "-", True: "yes", False: "no (pinned host)"}[r["on_device"]]
        lines.append(
            f"| {size} | {n:,} | {split / GB:.2f} GB | {load} | {peak / GB:.2f} GB | "
            f"{r['rss_floor'] / GB:.2f} GB | {(peak - split) / GB:.2f} GB | "
            f"{(split + TARGET_EXTRA) / GB:.2f} GB | "
            f"{'yes' if peak <= split + TARGET_EXTRA else 'NO'} | {gpu} | {where} | "
            f"{r['seconds']:.1f} |"
        )
    return "\n".join(lines)


def write(results, args, argv, device):
    """(Re)write this device's memory section with the rows measured so far."""
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    command = shlex.join(
        ["python", "benchmarks/memory.py", *(sys.argv[1:] if argv is None else argv)]
    )
    body = (
        f"Device {device.type}{gpu}; command `{command}`. "
        f"PathMNIST's real training split has {TRAIN_IMAGES:,} images (rows with fewer say "
        "so). Each load is a fresh process: `load_split` + `BatchLoader` + two batches; "
        "'after imports' is the floor every run pays (torch, pathmnist, and CUDA's start "
        "where used). The second load finds what the first left beside the file (an "
        "uncompressed .npy copy, memory-mapped, for arrays of 1 GiB or more): the pages of a "
        "memory map count in RSS only once read, so 'peak - split' can be negative.\n\n"
        + table(results)
    )
    title = f"Peak memory of a training split ({device.type})"
    write_section(f"memory-{device.type}", title, body, path=args.out)
    return body


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    p.add_argument("--n-train", type=int, nargs="+", default=[TRAIN_IMAGES, TRAIN_IMAGES],
                   help="training images per size (89996 89996; 224 px at full size needs "
                   "13.5 GB of disk for the .npy copy and about 4 minutes on 2 cores)")  # fmt: skip
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--out", type=Path, default=RESULTS, help="results file (RESULTS.md)")
    p.add_argument("--data-dir", type=Path, help="where to write the npz files (a temp dir)")
    args = p.parse_args(argv)
    if args.child:
        return child(args.child, args.device)
    if len(args.n_train) != len(args.sizes):
        p.error("give one --n-train per --sizes entry")
    device, results = resolve_device(args.device), []
    with tempfile.TemporaryDirectory(prefix="pathmnist-memory-", dir=args.data_dir) as work:
        for size, n in zip(args.sizes, args.n_train, strict=True):
            path = Path(work) / f"pathmnist_{size}.npz"
            write_npz(path, n, size)
            for load in ("first", "second"):
                results.append((size, n, load, measure(path, args.device)))
                body = write(results, args, argv, device)  # Each row kept as soon as made.
                print(results[-1], flush=True)
            for made in Path(work).iterdir():  # This size's file and any cache beside it.
                shutil.rmtree(made) if made.is_dir() else made.unlink()
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
