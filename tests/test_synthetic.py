"""Tests for pathmnist.data.synthetic (and the tissue maps of pathmnist.data.tissue): the
MedMNIST npz format (medmnist.PathMNIST and data.load_split read it), determinism, the
default file's bytes pinned, class proportions, texture over colour (a mean-RGB
nearest-centroid classifier stays below 0.6), the test-split stain and scanner shifts,
memory-bounded chunking, the CLI and the cache."""

import hashlib
import subprocess
import sys
import tracemalloc

import medmnist
import numpy as np
import pytest
from hypothesis import example, given, settings
from strategies import synthetic_image_sizes, synthetic_split_sizes

from pathmnist.data import dataset as data
from pathmnist.data import synthetic
from pathmnist.errors import PathMNISTError

KEYS = [f"{s}_{k}" for s in ("train", "val", "test") for k in ("images", "labels")]


@pytest.fixture(scope="module")
def bench():
    """A few hundred images per split at 32x32 (texture and stain statistics)."""
    return synthetic.generate(450, 450, 450, size=32, seed=0)


def mean_rgb(images):
    return images.reshape(len(images), -1, 3).mean(axis=1)  # (N, 3)


def test_keys_dtypes_shapes():
    """Six MedMNIST keys: uint8 (N, H, W, 3) images and uint8 (N, 1) labels in 0..8."""
    arrays = synthetic.generate(12, 5, 7, size=24, seed=1)
    assert sorted(arrays) == sorted(KEYS)
    for split, n in (("train", 12), ("val", 5), ("test", 7)):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        assert images.dtype == np.uint8 and images.shape == (n, 24, 24, 3)
        assert labels.dtype == np.uint8 and labels.shape == (n, 1)
        assert labels.max() < 9


def test_class_names_follow_medmnist():
    """The nine class names are medmnist.INFO's, in label order."""
    info = medmnist.INFO["pathmnist"]["label"]
    assert synthetic.CLASS_NAMES == tuple(info[str(i)] for i in range(9))
    assert synthetic.CLASS_NAMES == data.CLASS_NAMES


def test_deterministic_from_the_seed():
    """The same seed gives the same bytes; another seed gives other images."""
    a = synthetic.generate(10, 4, 4, size=32, seed=3)
    b = synthetic.generate(10, 4, 4, size=32, seed=3)
    c = synthetic.generate(10, 4, 4, size=32, seed=4)
    assert all(np.array_equal(a[k], b[k]) for k in KEYS)
    assert not np.array_equal(a["train_images"], c["train_images"])


def test_splits_and_workers_are_independent():
    """Changing n_test or the thread count leaves the train and val splits unchanged."""
    n = synthetic.CHUNK + 5  # More than one chunk, so the threads share the work.
    a = synthetic.generate(n, 6, 3, size=16, seed=0, workers=1)
    b = synthetic.generate(n, 6, 40, size=16, seed=0, workers=2)
    for key in KEYS[:4]:
        assert np.array_equal(a[key], b[key]), key


def test_shift_changes_only_the_test_split():
    """The stain shift leaves train and val untouched and moves every test image."""
    a = synthetic.generate(6, 6, 6, size=16, seed=2, shift=0.0)
    b = synthetic.generate(6, 6, 6, size=16, seed=2, shift=1.5)
    for key in [*KEYS[:4], "test_labels"]:
        assert np.array_equal(a[key], b[key]), key
    diff = np.abs(a["test_images"].astype(int) - b["test_images"]).mean(axis=(1, 2, 3))
    assert (diff > 1).all()


def test_every_class_in_every_split_in_real_proportions(bench):
    """Each split holds every class, in NCT-CRC-HE-100K's proportions to within one image."""
    assert synthetic.COUNTS.sum() == 100_000
    for split in ("train", "val", "test"):
        counts = np.bincount(bench[f"{split}_labels"][:, 0], minlength=9)
        assert (counts > 0).all()
        assert np.abs(counts - 450 * synthetic.PROPORTIONS).max() < 1


def test_mean_colour_does_not_give_the_class_away(bench):
    """Nearest-centroid on per-image mean RGB scores below 0.6 on val (texture carries
    the class), yet above chance (colour still says something, as in real H&E)."""
    x, y = mean_rgb(bench["train_images"]), bench["train_labels"][:, 0]
    centroids = np.stack([x[y == k].mean(axis=0) for k in range(9)])  # (9, 3)
    xv, yv = mean_rgb(bench["val_images"]), bench["val_labels"][:, 0]
    pred = ((xv[:, None] - centroids[None]) ** 2).sum(-1).argmin(axis=1)
    accuracy = (pred == yv).mean()
    assert 0.2 < accuracy < 0.6, accuracy


@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_test_split_stain_shift(shift):
    """With shift > 0 the test split's mean colour differs from val's by several grey
    levels; with shift = 0 it matches val's within sampling noise."""
    arrays = synthetic.generate(9, 400, 400, size=16, seed=5, shift=shift)
    val, test = mean_rgb(arrays["val_images"]), mean_rgb(arrays["test_images"])
    gap = np.abs(test.mean(axis=0) - val.mean(axis=0)).max()  # Largest channel gap.
    # Both splits hold the same class counts, so the gap's noise is within-class only:
    # three standard errors from the pooled within-class variance.
    y = arrays["val_labels"][:, 0]
    within = sum(val[y == k].var(axis=0) * (y == k).sum() for k in range(9)) / len(y)
    noise = 3 * np.sqrt(2 * within / len(y)).max()
    if shift == 0:
        assert gap < noise, (gap, noise)
    else:
        assert gap > max(5.0, 2 * noise), (gap, noise)


def test_medmnist_loads_the_file(tmp_path):
    """medmnist.PathMNIST(split, root, size=64) reads the file written as pathmnist_64.npz
    (its len() insists on the real split sizes: see the slow full-size test)."""
    arrays = synthetic.generate(12, 9, 10, size=64, seed=0)
    synthetic.write_npz(tmp_path / "pathmnist_64.npz", arrays)
    for split, n in (("train", 12), ("val", 9), ("test", 10)):
        ds = medmnist.PathMNIST(split=split, root=str(tmp_path), size=64, download=False)
        assert ds.imgs.shape == (n, 64, 64, 3) and np.array_equal(
            ds.imgs, arrays[f"{split}_images"]
        )
        image, target = ds[n - 1]
        assert image.size == (64, 64) and image.mode == "RGB"
        assert target.tolist() == [int(arrays[f"{split}_labels"][n - 1, 0])]


def test_load_split_reads_the_file(tmp_path):
    """pathmnist.data.dataset.load_split(data_file=...) returns the same images and int64 labels."""
    arrays = synthetic.generate(12, 9, 10, size=32, seed=0)
    path = synthetic.write_npz(tmp_path / "bench.npz", arrays)
    val = data.load_split("val", data_file=path)
    assert np.array_equal(val.images, arrays["val_images"])
    assert val.labels.dtype == np.int64 and np.array_equal(val.labels, arrays["val_labels"][:, 0])
    assert val.class_names == synthetic.CLASS_NAMES and val.image_size == 32


def test_memory_stays_bounded_by_chunks():
    """Generation works chunk by chunk into the preallocated output: the extra memory for
    16 chunks is no more than for 2 (so PathMNIST-sized files need no huge buffers)."""

    def extra_peak(n):
        tracemalloc.start()
        arrays = synthetic.generate(n, 1, 1, size=24, seed=0, workers=1)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak - sum(a.nbytes for a in arrays.values())

    small, large = extra_peak(2 * synthetic.CHUNK), extra_peak(16 * synthetic.CHUNK)
    assert large < 1.5 * small + (1 << 20), (small, large)


@pytest.mark.slow
def test_full_size_file_loads_in_medmnist(tmp_path):
    """A file with PathMNIST's split sizes (89,996 / 10,004 / 7,180; at 28x28 and stored
    uncompressed to stay fast) passes medmnist.PathMNIST's own size check: len() equals
    the real split size."""
    sizes = tuple(data.SPLIT_SIZES[s] for s in ("train", "val", "test"))
    np.savez(tmp_path / "pathmnist.npz", **synthetic.generate(*sizes, size=28))
    for split in ("train", "val", "test"):
        ds = medmnist.PathMNIST(split=split, root=str(tmp_path), size=28)
        assert len(ds) == data.SPLIT_SIZES[split] and ds[len(ds) - 1][0].size == (28, 28)


def test_real_split_sizes_are_accepted(monkeypatch):
    """PathMNIST's split sizes (89,996 / 10,004 / 7,180) make arrays of exactly that shape;
    rendering is stubbed here, the chunking and bookkeeping are real."""
    monkeypatch.setattr(
        synthetic, "_render", lambda rng, labels, size, *shifts: np.zeros((len(labels), 1, 1, 3))
    )
    arrays = synthetic.generate(89_996, 10_004, 7_180, size=16)
    for split, n in data.SPLIT_SIZES.items():
        assert arrays[f"{split}_images"].shape == (n, 16, 16, 3)
        counts = np.bincount(arrays[f"{split}_labels"][:, 0], minlength=9)
        assert np.abs(counts - n * synthetic.PROPORTIONS).max() < 1


@settings(max_examples=15, deadline=None)
@given(sizes=synthetic_split_sizes, size=synthetic_image_sizes)
@example(sizes=(1, 1, 1), size=16)
@example(sizes=(9, 1, 12), size=64)
def test_any_small_request_has_the_right_shapes(sizes, size):
    """For any split sizes and image side, shapes, dtypes and label range hold."""
    arrays = synthetic.generate(*sizes, size=size, seed=0)
    for split, n in zip(("train", "val", "test"), sizes, strict=True):
        assert arrays[f"{split}_images"].shape == (n, size, size, 3)
        assert arrays[f"{split}_images"].dtype == np.uint8
        labels = arrays[f"{split}_labels"]
        assert labels.shape == (n, 1) and labels.dtype == np.uint8 and labels.max() <= 8
        if n >= 9:
            assert len(np.unique(labels)) == 9


def test_ensure_synthetic_caches(tmp_path, monkeypatch):
    """The first call writes a file named after its parameters; the second reuses it."""
    path = synthetic.ensure_synthetic(tmp_path, sizes=(9, 9, 9), size=16, seed=1, shift=0.5)
    assert path.name == f"synthetic_16_9-9-9_seed1_shift0.5_v{synthetic.VERSION}.npz"
    assert sorted(np.load(path).files) == sorted(KEYS)
    stamp = path.stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("generate() ran again")

    monkeypatch.setattr(synthetic, "generate", fail)
    again = synthetic.ensure_synthetic(tmp_path, sizes=(9, 9, 9), size=16, seed=1, shift=0.5)
    assert again == path and path.stat().st_mtime_ns == stamp


def test_write_npz_is_atomic(tmp_path, monkeypatch):
    """A failing write leaves the old file intact and no temporary file behind."""
    path = synthetic.write_npz(tmp_path / "x.npz", {"a": np.arange(3)})

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        synthetic.write_npz(path, {"a": np.arange(5)})
    assert np.load(path)["a"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["x.npz"]


def test_cli_in_process(tmp_path, capsys):
    """main() writes the requested file and prints one summary line."""
    out = tmp_path / "sub" / "bench.npz"
    argv = ["--out", str(out), "--n-train", "9", "--n-val", "3", "--n-test", "4"]
    assert synthetic.main([*argv, "--size", "16", "--seed", "2", "--shift", "0"]) == 0
    arrays = np.load(out)
    assert arrays["train_images"].shape == (9, 16, 16, 3) and len(arrays["test_labels"]) == 4
    assert "wrote" in capsys.readouterr().out


def test_cli_as_a_module(tmp_path):
    """`python -m pathmnist.data.synthetic --out FILE` exits 0 and writes a file medmnist reads."""
    argv = ["--out", str(tmp_path / "pathmnist_64.npz"), "--n-train", "9", "--n-val", "3"]
    run = subprocess.run(
        [sys.executable, "-m", "pathmnist.data.synthetic", *argv, "--n-test", "2", "--quiet"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    ds = medmnist.PathMNIST(split="val", root=str(tmp_path), size=64)
    assert ds.imgs.shape == (3, 64, 64, 3)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"n_train": 0}, "n_train"),
        ({"n_val": -3}, "n_val"),
        ({"n_test": 2.5}, "n_test"),
        ({"size": 8}, "size"),
        ({"seed": -1}, "seed"),
        ({"shift": -0.1}, "shift"),
        ({"shift": float("nan")}, "shift"),
        ({"shift": "big"}, "shift"),
        ({"shift": float("inf")}, "shift"),
        ({"workers": 0}, "workers"),
        ({"scanner": -0.5}, "scanner"),
        ({"scanner": float("nan")}, "scanner"),
        ({"scanner": "jpeg"}, "scanner"),
    ],
)
def test_bad_values_raise(kwargs, word):
    """Each bad value raises PathMNISTError naming the offending parameter."""
    args = {"n_train": 3, "n_val": 3, "n_test": 3, **kwargs}
    with pytest.raises(PathMNISTError, match=word):
        synthetic.generate(**args)


def test_ensure_synthetic_rejects_bad_sizes(tmp_path):
    """sizes must be three counts; anything else raises PathMNISTError naming sizes."""
    with pytest.raises(PathMNISTError, match="sizes"):
        synthetic.ensure_synthetic(tmp_path, sizes=(10, 10))


@pytest.mark.parametrize("kwargs", [{"shift": "big"}, {"scanner": "jpeg"}, {"scanner": -1}])
def test_ensure_synthetic_rejects_bad_shifts(tmp_path, kwargs):
    """A bad shift or scanner raises PathMNISTError naming it before any file is named."""
    with pytest.raises(PathMNISTError, match=next(iter(kwargs))):
        synthetic.ensure_synthetic(tmp_path, sizes=(9, 1, 1), **kwargs)


@pytest.mark.parametrize(
    ("flag", "words"),
    [
        (["--n-train", "0"], "--n-train 0 cannot hold one image of each of the 9 classes"),
        (["--n-train", "8"], "pass --n-train 9 or more"),
        (["--size", "4"], "size"),
        (["--size", "2048"], "--size 2048 is above 1024"),
        (["--shift", "-1"], "shift"),
        (["--scanner", "-1"], "scanner"),
    ],
)
def test_cli_bad_value_exits_2(tmp_path, capsys, flag, words):
    """A bad flag value, or a file training would refuse (a class missing from the
    training split, images past TrainConfig's largest size), prints one `error:` sentence
    and returns status 2, writing nothing."""
    out = tmp_path / "bad.npz"
    assert synthetic.main(["--out", str(out), "--quiet", *flag]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("flags", [["--n-train", "abc"], ["--size"], ["--colour", "red"], []])
def test_cli_bad_flags_are_one_line(tmp_path, capsys, flags):
    """argparse's own refusals (a word for a number, a missing value, an unknown flag, no
    --out) are one `error:` line and exit status 2, not a usage block."""
    argv = [*flags, "--quiet"] if not flags else ["--out", str(tmp_path / "x.npz"), *flags]
    with pytest.raises(SystemExit) as e:
        synthetic.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def digest(arrays):
    """SHA-256 of every array's name and bytes, in key order."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        h.update(key.encode())
        h.update(np.ascontiguousarray(arrays[key]).tobytes())
    return h.hexdigest()


def test_default_file_is_unchanged_by_the_scanner_option():
    """The default (stain-shifted, no scanner) arrays have the bytes the generator made
    before the scanner shift and the synthetic_tissue split existed (hash recorded from
    that code at this tiny size), and the default cache name is the same as then."""
    arrays = synthetic.generate(9, 5, 7, size=16, seed=0)
    assert digest(arrays) == "6ff0a3f6df42bcdefcb6079a27bac5545511f884dc31f74f74e2cecdc201ebf0"
    assert synthetic.cache_name() == "synthetic_64_2400-800-800_seed0_shift1_v1.npz"
    assert digest(synthetic.generate(9, 5, 7, size=16, seed=0, shift=1.0, scanner=0.0)) == (
        digest(arrays)
    )


def laplacian(images):
    """Mean absolute 4-neighbour Laplacian of the grey images: high-frequency energy."""
    x = images.astype(np.float64).mean(axis=3)  # (N, S, S)
    lap = 4 * x[:, 1:-1, 1:-1] - x[:, :-2, 1:-1] - x[:, 2:, 1:-1] - x[:, 1:-1, :-2] - x[:, 1:-1, 2:]
    return np.abs(lap).mean()


@pytest.fixture(scope="module")
def scanned():
    """400 val and test images at 32x32, the test split with the scanner shift only, and
    the same test split without it."""
    arrays = synthetic.generate(9, 400, 400, size=32, seed=5, shift=0.0, scanner=1.0)
    plain = synthetic.generate(9, 1, 400, size=32, seed=5, shift=0.0)
    return arrays, plain["test_images"]


def test_scanner_shift_blurs_the_test_split_and_keeps_its_colour(scanned):
    """With scanner=1 the test split has under 0.7 x val's high-frequency energy (mean
    absolute Laplacian), while its mean colour matches val's within sampling noise plus
    one grey level (JPEG rounding), and the unscanned same split's within one level."""
    arrays, plain = scanned
    val, test = arrays["val_images"], arrays["test_images"]
    assert laplacian(test) < 0.7 * laplacian(val), (laplacian(test), laplacian(val))
    assert laplacian(plain) > 0.9 * laplacian(val)
    val_rgb, test_rgb = mean_rgb(val), mean_rgb(test)
    y = arrays["val_labels"][:, 0]
    within = sum(val_rgb[y == k].var(axis=0) * (y == k).sum() for k in range(9)) / len(y)
    noise = 3 * np.sqrt(2 * within / len(y)).max()
    gap = np.abs(test_rgb.mean(axis=0) - val_rgb.mean(axis=0)).max()
    assert gap < noise + 1, (gap, noise)
    assert np.abs(test_rgb.mean(axis=0) - mean_rgb(plain).mean(axis=0)).max() < 1


def test_scanner_shift_changes_only_the_test_images():
    """The scanner shift leaves train, val and the test labels untouched, on top of a
    stain shift too, and changes the test images."""
    a = synthetic.generate(6, 6, 6, size=32, seed=2, shift=1.0)
    b = synthetic.generate(6, 6, 6, size=32, seed=2, shift=1.0, scanner=1.0)
    for key in [*KEYS[:4], "test_labels"]:
        assert np.array_equal(a[key], b[key]), key
    assert not np.array_equal(a["test_images"], b["test_images"])


def test_ensure_synthetic_names_the_scanner_shift(tmp_path):
    """A scanner shift gets its own cache file; scanner=0 keeps the name without it."""
    plain = synthetic.ensure_synthetic(tmp_path, sizes=(9, 1, 2), size=16, shift=0, scanner=0)
    scan = synthetic.ensure_synthetic(tmp_path, sizes=(9, 1, 2), size=16, shift=0, scanner=1)
    assert plain.name == f"synthetic_16_9-1-2_seed0_shift0_v{synthetic.VERSION}.npz"
    assert scan.name == f"synthetic_16_9-1-2_seed0_shift0_scanner1_v{synthetic.VERSION}.npz"
    assert not np.array_equal(np.load(plain)["test_images"], np.load(scan)["test_images"])


def test_cli_scanner_flag(tmp_path):
    """--scanner 1 writes a test split that differs from the one without it."""
    argv = ["--n-train", "9", "--n-val", "1", "--n-test", "3", "--size", "16", "--quiet"]
    assert synthetic.main(["--out", str(tmp_path / "a.npz"), *argv]) == 0
    assert synthetic.main(["--out", str(tmp_path / "b.npz"), "--scanner", "1", *argv]) == 0
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert np.array_equal(a["val_images"], b["val_images"])
    assert not np.array_equal(a["test_images"], b["test_images"])


@pytest.mark.parametrize("where", ["folder", "under_file"])
def test_cli_bad_out_path_exits_2(tmp_path, where):
    """--out naming a folder, or a path under a file, prints one `error: ` line (no
    traceback) and exits 2, from the shell too."""
    (tmp_path / "file.txt").write_text("x")
    out = tmp_path if where == "folder" else tmp_path / "file.txt" / "lab.npz"
    run = subprocess.run(
        [sys.executable, "-m", "pathmnist.data.synthetic", "--out", str(out), "--quiet",
         "--n-train", "9", "--n-val", "1", "--n-test", "1", "--size", "16"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_cli_unwritable_out_exits_2(tmp_path, capsys, monkeypatch):
    """An OS error while writing (a full disk, say) prints `error: ` and returns 2."""

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(synthetic, "write_npz", full)
    argv = ["--out", str(tmp_path / "x.npz"), "--n-train", "9", "--n-val", "1", "--n-test", "1"]
    assert synthetic.main([*argv, "--size", "16", "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("error: could not write")
