"""PathMNIST on disk and in memory: facts, download, load_split, ImageSet, stratified_subset
(pathmnist.data.loader feeds a split to the model).
Source: MedMNIST v2 (Yang et al. 2023, Scientific Data 10:41, arXiv 2110.14795); PathMNIST is
Kather et al. 2019's NCT-CRC-HE-100K (train/val) and CRC-VAL-HE-7K (test). Every fact (class
names in label order, split sizes, URLs and MD5 sums per image size) is read from
`medmnist.INFO["pathmnist"]`, never retyped; the file layout is MedMNIST's npz format (six
keys `{train,val,test}_{images,labels}`), the one `medmnist.PathMNIST` reads.

Tested against medmnist.INFO (facts), a local file:// URL (download, MD5, atomic write,
interruption), tiny npz files (load_split and its refusals) and hypothesis properties.
"""

import hashlib
import math
import numbers
import os
import re
import sys
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import medmnist
import numpy as np
from tqdm.auto import tqdm

from pathmnist import checks
from pathmnist.data.npz import read_arrays
from pathmnist.errors import PathMNISTError
from pathmnist.files import atomic_path

INFO = medmnist.INFO["pathmnist"]
CLASS_NAMES: tuple[str, ...] = tuple(INFO["label"][str(i)] for i in range(len(INFO["label"])))
SPLITS = ("train", "val", "test")
SPLIT_SIZES: dict[str, int] = dict(INFO["n_samples"])
SIZES = (28, 64, 128, 224)


def _suffix(size) -> str:
    # MedMNIST names the 28x28 file without a suffix ("url", "MD5", "pathmnist.npz") and every
    # larger one with "_{size}" ("url_64", "MD5_64", "pathmnist_64.npz").
    if not isinstance(size, numbers.Integral) or isinstance(size, bool) or size not in SIZES:
        raise PathMNISTError(f"image size {size!r} is not available; choose one of {SIZES}.")
    return "" if size == 28 else f"_{size}"


def url(size: int = 64) -> str:
    """The download URL of the PathMNIST file with `size`x`size` images."""
    return INFO["url" + _suffix(size)]


def md5(size: int = 64) -> str:
    """The MD5 sum (hex) of that file."""
    return INFO["MD5" + _suffix(size)]


def filename(size: int = 64) -> str:
    """The file's name: "pathmnist.npz" for 28, else "pathmnist_{size}.npz"."""
    return f"pathmnist{_suffix(size)}.npz"


def default_root() -> Path:
    """~/.medmnist, the directory medmnist itself downloads into."""
    return Path(os.path.expanduser("~")) / ".medmnist"


def file_md5(path) -> str:
    """The MD5 sum (hex) of a file, streamed by hashlib (a 2 GB file is never in memory)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def download(root=None, size: int = 64, *, url=None, md5=None, progress: bool = True) -> Path:
    """Fetch the PathMNIST npz for `size` into `root` (default ~/.medmnist), MD5-checked. A
    file already there with the right MD5 is kept; one with a wrong MD5 is fetched again
    (with a warning). The bytes go to a temporary file in `root`, renamed over the target
    only after the MD5 matches, so no partial file survives an error or Ctrl-C. `url` and
    `md5` override medmnist's (the tests use a local file:// URL).
    """
    suffix = _suffix(size)  # Validates size even when url and md5 are given.
    source = url or INFO["url" + suffix]
    expected = (md5 or INFO["MD5" + suffix]).lower()
    root = Path(root) if root is not None else default_root()
    target = root / filename(size)
    where = target.absolute()
    by_hand = f"download {source} by hand, check its MD5 is {expected} and put it at {where}"
    if target.is_file():
        if file_md5(target) == expected:
            return target
        warnings.warn(
            f"{target} has the wrong MD5 (expected {expected}); downloading it again.", stacklevel=2
        )
    # atomic_path renames only if the block ends normally: any failure, Ctrl-C included,
    # removes the temporary file and leaves no partial download behind.
    with atomic_path(target) as tmp, open(tmp, "wb") as out:
        digest = hashlib.md5(usedforsecurity=False)
        try:
            with urllib.request.urlopen(source, timeout=60) as response:
                total = response.headers.get("Content-Length")
                show = progress and sys.stderr.isatty()
                bar = tqdm(total=int(total) if total else None, unit="B", unit_scale=True,
                           desc=target.name, disable=not show)  # fmt: skip
                with bar:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        except (OSError, ValueError) as e:  # URLError is an OSError; a bad URL a ValueError
            raise PathMNISTError(f"could not download {source} ({e}); {by_hand}.") from e
        if digest.hexdigest() != expected:
            raise PathMNISTError(
                f"the file downloaded from {source} has MD5 {digest.hexdigest()}, not the"
                f" expected {expected}; try again, or {by_hand}."
            )
    return target


@dataclass
class ImageSet:
    """One split in memory: images uint8 (N, H, W, 3), labels int64 (N,), class names in
    label order."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[3] != 3:
            raise PathMNISTError(
                f"ImageSet images are {self.images.dtype} {self.images.shape};"
                " give uint8 (N, H, W, 3) arrays."
            )
        labels = np.asarray(self.labels)
        if labels.dtype.kind not in "iu" and not np.array_equal(labels, np.trunc(labels)):
            raise PathMNISTError(f"ImageSet labels are {labels.dtype}, not integers; fix them.")
        self.labels = labels.astype(np.int64, copy=False)  # No copy when already int64.
        if self.labels.shape != (len(self.images),):
            raise PathMNISTError(
                f"ImageSet labels have shape {self.labels.shape}; give one label per image, (N,)."
            )
        self.class_names = tuple(self.class_names)
        odd = self.labels[(self.labels < 0) | (self.labels >= len(self.class_names))]
        if odd.size:
            raise PathMNISTError(
                f"ImageSet label {int(odd[0])} lies outside the {len(self.class_names)} classes "
                f"(0..{len(self.class_names) - 1}); give labels that index class_names."
            )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_size(self) -> int:
        return self.images.shape[1]


def _labels(path: Path, key: str, labels: np.ndarray) -> np.ndarray:
    """Validate one `{split}_labels` array and return it as int64 (N,)."""
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise PathMNISTError(
            f"{path}: {key} has shape {labels.shape}, but only single-label files are supported;"
            " give labels as (N, 1) or (N,) integers."
        )
    if labels.dtype.kind not in "iu":
        raise PathMNISTError(f"{path}: {key} are {labels.dtype}; store labels as integers.")
    if labels.size and labels.min() < 0:
        raise PathMNISTError(
            f"{path}: {key} holds negative label {labels.min()}; labels must be 0, 1, 2, ..."
        )
    return labels.astype(np.int64, copy=False)


def _class_names(path: Path, labels: dict[str, np.ndarray]) -> tuple[str, ...]:
    """Class names for a file: medmnist's when its name is a MedMNIST flag file
    ("bloodmnist_64.npz"), else PathMNIST's for 9 classes, else "class 0", "class 1", ...

    The labels must be 0..K-1 with every class present in the training split (K from
    medmnist for a flag file, else the number of distinct training labels): one stray 12
    among 0..8 is a corrupt file, not a 13-class problem."""
    flag = re.sub(r"_\d+$", "", path.stem)
    known = flag in medmnist.INFO and not medmnist.INFO[flag]["task"].startswith("multi-label")
    train = labels.get("train_labels", np.zeros(0, np.int64))
    k = len(medmnist.INFO[flag]["label"]) if known else len(np.unique(train))
    odd = sorted({int(v) for y in labels.values() for v in np.unique(y) if v >= k})
    missing = sorted(set(range(k)) - set(np.unique(train).tolist()))
    if k == 1 and not known:
        raise PathMNISTError(
            f"{path}: the training split holds one class only (label {int(train[0])}); a "
            "classifier needs two or more: give a file with every class."
        )
    if odd or missing:
        problem = f"label(s) {', '.join(map(str, odd[:5]))} lie outside 0..{k - 1}" if odd else ""
        problem += "; " if odd and missing else ""
        if missing:
            problem += f"class(es) {', '.join(map(str, missing[:5]))} have no training image"
        raise PathMNISTError(
            f"{path}: {problem}; labels must be 0..K-1 with every class in the training split: "
            "fix the file."
        )
    if known:
        names = medmnist.INFO[flag]["label"]
        return tuple(names[str(i)] for i in range(len(names)))
    return CLASS_NAMES if k == len(CLASS_NAMES) else tuple(f"class {i}" for i in range(k))


def load_split(split: str, root=None, size: int = 64, data_file=None) -> ImageSet:
    """Load one split as an ImageSet from `data_file` (any MedMNIST-format npz), or from
    `root`/pathmnist_{size}.npz, downloading it when absent.

    Only this split's images are read (one copy; grayscale (N, H, W) becomes 3 channels by
    np.repeat, which then is the one copy). Every split's labels are read, to count classes.
    """
    if split not in SPLITS:
        raise PathMNISTError(f"unknown split {split!r}; choose one of {SPLITS}.")
    if data_file is None:
        path = (Path(root) if root is not None else default_root()) / filename(size)
        if not path.exists():
            download(root, size)
    else:
        path = Path(data_file)
        what = "not a regular file (a device or pipe?)"
        what = "empty" if not str(data_file).strip() else "a folder" if path.is_dir() else what
        if str(data_file).strip() == "" or (path.exists() and not path.is_file()):
            raise PathMNISTError(f"data file {str(data_file)!r} is {what}; give an npz file.")
        if not path.is_file():
            raise PathMNISTError(f"data file {path} does not exist; check the path.")
    image_key, label_key = f"{split}_images", f"{split}_labels"
    arrays = read_arrays(path, [image_key, *(f"{s}_labels" for s in SPLITS)])
    for key in (image_key, label_key):
        if key not in arrays:
            raise PathMNISTError(
                f"{path} has no {key!r} array; give an npz in the MedMNIST format "
                "(keys train/val/test_images and train/val/test_labels)."
            )
    labels = {k: _labels(path, k, v) for k, v in arrays.items() if k.endswith("_labels")}
    images, y = arrays[image_key], labels[label_key]
    if images.dtype != np.uint8:
        raise PathMNISTError(f"{path}: {image_key} are {images.dtype}; store images as uint8.")
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[3] == 3)):
        raise PathMNISTError(
            f"{path}: {image_key} has shape {images.shape}; store images as (N, H, W, 3) RGB"
            " or (N, H, W) grayscale."
        )
    if images.shape[1] != images.shape[2]:
        raise PathMNISTError(
            f"{path}: {image_key} are {images.shape[1]}x{images.shape[2]}; images must be square."
        )
    if len(images) == 0:
        raise PathMNISTError(f"{path}: the {split} split is empty; give it at least one image.")
    if len(images) != len(y):
        raise PathMNISTError(
            f"{path}: {image_key} has {len(images)} images but {label_key} has {len(y)} labels;"
            " give one label per image."
        )
    names = _class_names(path, labels)
    head = images[:1000]  # A cheap look first: only an all-constant head reads the rest.
    if head.min() == head.max() and images.min() == images.max():
        raise PathMNISTError(
            f"{path}: every {split} image is one flat value ({int(images.min())}); nothing can be "
            "learned or normalised from it: fix the file."
        )
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=3)  # (N, H, W) -> (N, H, W, 3)
    return ImageSet(images, y, names)


def check_same_size(splits: dict) -> None:
    """Refuse splits whose images differ in size: a model trained at one size is evaluated
    at that size."""
    sizes = {name: s.image_size for name, s in splits.items()}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{n} {v}x{v}" for n, v in sizes.items())
        raise PathMNISTError(f"the splits' images differ in size ({listed}); fix the file.")


def stratified_subset(imageset: ImageSet, fraction: float, seed: int = 0) -> ImageSet:
    """A class-balanced random `fraction` of `imageset` (the seed project's 20% tuning subset).

    Each class c with n_c images keeps round(fraction * n_c) of them, at least one, so its
    count is within one image of fraction * n_c and no class disappears. Indices are drawn
    with numpy's default_rng(seed) and kept in their original order.
    """
    checks.real(fraction, "subset fraction", 0, 1, low_open=True)
    if fraction == 1:
        return imageset
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(imageset.labels):
        members = np.flatnonzero(imageset.labels == c)
        k = max(1, math.floor(fraction * len(members) + 0.5))  # Round half up, at least one.
        keep.append(rng.choice(members, size=k, replace=False))
    idx = np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)
    return ImageSet(imageset.images[idx], imageset.labels[idx], imageset.class_names)
