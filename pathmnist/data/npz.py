"""Reading MedMNIST npz files: only the arrays asked for, and the large image arrays as
read-only memory maps of an uncompressed copy beside the file.

np.load of a compressed member decompresses the whole array into memory; the 224x224
training split is 13.5 GB of uint8. A memory map lets the loader read pages as it needs
them (and copy them to the device), so host memory holds one split at most.

Tested in tests/test_dataset.py (through load_split: damaged files, the memory-mapped copy).
"""

import shutil
import zipfile
import zlib
from pathlib import Path

import numpy as np

from pathmnist.errors import PathMNISTError
from pathmnist.files import atomic_path

# Image arrays at least this large are memory-mapped from an uncompressed copy (1 GiB: the
# 128x128 and 224x224 training splits; the 64x64 one, 1.1 GB, too).
MMAP_BYTES = 1 << 30


CACHE_DIR = ".pathmnist-cache"


_LOAD_ERRORS = (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error)


def _cached_npy(path: Path, key: str) -> np.ndarray | None:
    """A large array of the npz as a read-only memory map of an uncompressed .npy copy
    beside the file (made once, streamed from the zip member in 1 MiB pieces, so never in
    memory); None when the member is small or the folder is not writable.

    np.load of a compressed member decompresses the whole array into memory; the 224x224
    training split is 13.5 GB of uint8. A memory map lets the loader read pages as it
    needs them (and copy them to the GPU), so host memory holds one split at most."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(f"{key}.npy")
        if info.file_size < MMAP_BYTES:
            return None
        stamp = f"{path.stat().st_size}-{int(path.stat().st_mtime)}"  # A changed file, a new copy.
        target = path.parent / CACHE_DIR / f"{path.stem}-{stamp}-{key}.npy"
        if not target.exists():
            try:
                with atomic_path(target) as tmp, z.open(info) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)  # A member is a whole .npy file.
            except PathMNISTError:
                return None  # Not writable or full: fall back to reading into memory.
    return np.load(target, mmap_mode="r", allow_pickle=False)


def read_arrays(path: Path, keys) -> dict[str, np.ndarray]:
    """Read only `keys` from the npz at `path` (missing keys are left out): one copy each,
    or a memory map for a large image array (`_cached_npy`)."""
    try:
        with open(path, "rb") as f:
            is_zip = f.read(2) == b"PK"  # An npz is a zip archive of .npy files.
        if is_zip:
            with np.load(path, allow_pickle=False) as f:
                present = [k for k in keys if k in f.files]
                mapped = {k: _cached_npy(path, k) for k in present if k.endswith("_images")}
                return {k: f[k] if mapped.get(k) is None else mapped[k] for k in present}
        problem = "is not an npz file (a zip archive of .npy arrays)"
    except _LOAD_ERRORS as e:
        problem = f"is not a readable npz file ({type(e).__name__}: {e})"
    raise PathMNISTError(
        f"{path} {problem}; download it again or rebuild it in the MedMNIST npz format."
    )
