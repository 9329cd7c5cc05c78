"""pathmnist.data.dataset: facts against medmnist.INFO, download against a local file:// URL,
load_split on tiny MedMNIST-format npz files (and every way such a file can be wrong),
file_md5 against hashlib, stratified_subset as hypothesis properties. (BatchLoader, now in
pathmnist.data.loader, is tested in tests/test_loader.py.)"""

import hashlib
import io
import os
import urllib.error
import urllib.request
from typing import ClassVar

import medmnist
import numpy as np
import pytest
from conftest import write_medmnist_npz
from hypothesis import example, given, settings
from hypothesis import strategies as st
from strategies import fractions, label_vectors, seeds

from pathmnist.data import dataset as data
from pathmnist.errors import PathMNISTError

# ---------------------------------------------------------------------------- facts


def test_facts_equal_medmnist_info():
    """Class names (label order), split sizes and sizes are medmnist's own."""
    info = medmnist.INFO["pathmnist"]
    assert data.CLASS_NAMES == tuple(info["label"][str(i)] for i in range(9))
    assert data.CLASS_NAMES[0] == "adipose" and data.CLASS_NAMES[8].startswith("colorectal")
    assert data.SPLIT_SIZES == info["n_samples"] == {"train": 89996, "val": 10004, "test": 7180}
    assert data.SPLITS == ("train", "val", "test")
    assert data.SIZES == (28, 64, 128, 224)


@pytest.mark.parametrize("size", [28, 64, 128, 224])
def test_url_md5_filename_per_size(size):
    """Size 28 uses the unsuffixed keys and file name; larger sizes use "_{size}"."""
    info, suffix = medmnist.INFO["pathmnist"], ("" if size == 28 else f"_{size}")
    assert data.url(size) == info["url" + suffix]
    assert data.md5(size) == info["MD5" + suffix]
    assert data.filename(size) == f"pathmnist{suffix}.npz"


@pytest.mark.parametrize("size", [0, 32, 256, "64", 64.0, True, None])
def test_bad_size_raises(size, tmp_path):
    """A size medmnist does not publish is a PathMNISTError naming the choices."""
    for call in (data.url, data.md5, data.filename):
        with pytest.raises(PathMNISTError, match="choose one of"):
            call(size)
    with pytest.raises(PathMNISTError, match="not available"):
        data.download(tmp_path, size, url="file:///x", md5="0" * 32)


def test_default_root_is_medmnist_home(tmp_path, monkeypatch):
    """The default data root is ~/.medmnist, as in medmnist."""
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.default_root() == tmp_path / ".medmnist"


# ---------------------------------------------------------------------------- download


@pytest.fixture
def source(tmp_path):
    """A small npz served from a file:// URL: (url, md5, bytes)."""
    path = write_medmnist_npz(tmp_path / "served.npz", sizes=(4, 2, 2))
    raw = path.read_bytes()
    return path.as_uri(), hashlib.md5(raw).hexdigest(), raw


@pytest.fixture
def root(tmp_path):
    return tmp_path / "root"


def counting_urlopen(monkeypatch):
    """Wrap urllib's urlopen to record the URLs it is asked for."""
    calls, real = [], urllib.request.urlopen
    monkeypatch.setattr(urllib.request, "urlopen", lambda u, **kw: calls.append(u) or real(u, **kw))
    return calls


def test_download_writes_verified_file(source, root):
    """A file:// URL with the right MD5 lands at root/pathmnist_64.npz, and nothing else."""
    url, md5, raw = source
    target = data.download(root, url=url, md5=md5, progress=False)
    assert target == root / "pathmnist_64.npz"
    assert target.read_bytes() == raw
    assert os.listdir(root) == ["pathmnist_64.npz"]
    assert data.download(root, 28, url=url, md5=md5).name == "pathmnist.npz"


def test_download_again_does_nothing(source, root, monkeypatch):
    """A second call finds the verified file and fetches nothing."""
    url, md5, _ = source
    calls = counting_urlopen(monkeypatch)
    target = data.download(root, url=url, md5=md5, progress=False)
    mtime = target.stat().st_mtime_ns
    assert data.download(root, url=url, md5=md5, progress=False) == target
    assert calls == [url] and target.stat().st_mtime_ns == mtime


def test_download_replaces_file_with_wrong_md5(source, root):
    """An existing file with the wrong MD5 is fetched again, with a warning saying so."""
    url, md5, raw = source
    root.mkdir()
    (root / "pathmnist_64.npz").write_bytes(b"stale")
    with pytest.warns(UserWarning, match="wrong MD5"):
        target = data.download(root, url=url, md5=md5, progress=False)
    assert target.read_bytes() == raw


def test_download_md5_mismatch_leaves_nothing(source, root):
    """A wrong MD5 names the URL, the expected MD5 and the target path; no file is left."""
    url, _, _ = source
    with pytest.raises(PathMNISTError) as err:
        data.download(root, url=url, md5="0" * 32, progress=False)
    message = str(err.value)
    assert url in message and "0" * 32 in message and str(root / "pathmnist_64.npz") in message
    assert os.listdir(root) == []


def test_download_unreachable_url(root):
    """No network (here a missing file:// path) names the URL and where to put the file."""
    url = "file:///nonexistent/pathmnist_64.npz"
    with pytest.raises(PathMNISTError, match="could not download") as err:
        data.download(root, url=url, md5="0" * 32, progress=False)
    assert url in str(err.value) and str(root / "pathmnist_64.npz") in str(err.value)
    assert os.listdir(root) == []


def test_download_defaults_build_medmnist_url_and_path(tmp_path, monkeypatch):
    """Without overrides the URL and MD5 come from medmnist.INFO and the file goes to
    ~/.medmnist/<filename>; the error for a failed fetch says all three."""
    monkeypatch.setenv("HOME", str(tmp_path))

    def offline(u, **kw):
        calls.append(u)
        raise urllib.error.URLError("no network")

    calls = []
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    for size in (28, 64):
        with pytest.raises(PathMNISTError) as err:
            data.download(size=size, progress=False)
        target = tmp_path / ".medmnist" / data.filename(size)
        for part in (data.url(size), data.md5(size), str(target)):
            assert part in str(err.value)
    assert calls == [data.url(28), data.url(64)]
    assert os.listdir(tmp_path / ".medmnist") == []


def test_download_interrupted_leaves_nothing(root, monkeypatch):
    """Ctrl-C in the middle of the transfer propagates and leaves no partial or temp file."""

    class Interrupted(io.BytesIO):
        headers: ClassVar = {"Content-Length": "8"}

        def read(self, n=-1):
            if self.tell():
                raise KeyboardInterrupt
            return super().read(4)

    monkeypatch.setattr(urllib.request, "urlopen", lambda u, **kw: Interrupted(b"12345678"))
    with pytest.raises(KeyboardInterrupt):
        data.download(root, url="https://example.invalid/x.npz", md5="0" * 32, progress=False)
    assert os.listdir(root) == []


# ---------------------------------------------------------------------------- load_split


def test_load_split_shapes_dtypes_names(tiny_npz):
    """Each split loads as uint8 (N, H, W, 3) and int64 (N,), with PathMNIST's 9 names."""
    raw = np.load(tiny_npz)
    for split, n in zip(data.SPLITS, (30, 10, 10), strict=True):
        s = data.load_split(split, data_file=tiny_npz)
        assert s.images.shape == (n, 8, 8, 3) and s.images.dtype == np.uint8
        assert s.labels.shape == (n,) and s.labels.dtype == np.int64
        assert len(s) == n and s.image_size == 8 and s.num_classes == 9
        assert s.class_names == data.CLASS_NAMES
        np.testing.assert_array_equal(s.images, raw[f"{split}_images"])
        np.testing.assert_array_equal(s.labels, raw[f"{split}_labels"][:, 0])


def test_grayscale_becomes_three_channels(tmp_path):
    """(N, H, W) images are repeated into 3 equal channels."""
    path = write_medmnist_npz(tmp_path / "gray.npz", channels=1)
    s = data.load_split("val", data_file=path)
    assert s.images.shape == (10, 8, 8, 3)
    for c in range(3):
        np.testing.assert_array_equal(s.images[..., c], np.load(path)["val_images"])


def test_class_count_from_labels(tmp_path):
    """A 4-class file gets 4 generic class names."""
    path = write_medmnist_npz(tmp_path / "four.npz", num_classes=4)
    s = data.load_split("train", data_file=path)
    assert s.class_names == ("class 0", "class 1", "class 2", "class 3")


def save_labels(path, train, val, test):
    """An npz of 2x2 images with the given label lists per split."""
    arrays = {}
    for split, labels in (("train", train), ("val", val), ("test", test)):
        arrays[f"{split}_images"] = np.arange(len(labels) * 12, dtype=np.uint8).reshape(
            len(labels), 2, 2, 3
        )  # Not one flat value: load_split refuses constant images.
        arrays[f"{split}_labels"] = np.asarray(labels, np.int32).reshape(-1, 1)
    np.savez(path, **arrays)
    return path


def test_classes_are_the_training_splits(tmp_path):
    """K is the number of distinct training labels; val and test may use fewer classes."""
    path = save_labels(tmp_path / "ok.npz", [0, 1, 2, 1], [0, 0], [2])
    for split in data.SPLITS:
        s = data.load_split(split, data_file=path)
        assert s.num_classes == 3 and s.class_names == ("class 0", "class 1", "class 2")
    assert data.load_split("val", data_file=path).labels.dtype == np.int64


@pytest.mark.parametrize(
    ("train", "val", "test", "words"),
    [
        ([0, 1, 0], [0, 1], [0, 4], r"label\(s\) 4 lie outside 0\.\.1"),  # Only test has a 4.
        ([0, 2, 0, 2], [0], [0], r"label\(s\) 2 lie outside 0\.\.1"),  # A gap in 0..K-1.
        ([0, 1, 0], [0, 12], [1, 9], r"label\(s\) 9, 12 lie outside"),
    ],
)
def test_labels_outside_the_training_classes_are_refused(tmp_path, train, val, test, words):
    """One stray label (in any split) or a gap in the training labels is a corrupt file,
    refused with one sentence naming the file, the labels and the fix, for every split."""
    path = save_labels(tmp_path / "stray.npz", train, val, test)
    for split in data.SPLITS:
        with pytest.raises(PathMNISTError, match=words) as info:
            data.load_split(split, data_file=path)
        message = str(info.value)
        assert message.startswith(str(path)) and message.endswith("fix the file.")


def test_medmnist_flag_file_uses_its_class_names(tmp_path):
    """A file named like a MedMNIST file takes that dataset's names and class count."""
    path = write_medmnist_npz(tmp_path / "bloodmnist_64.npz", num_classes=8)
    names = medmnist.INFO["bloodmnist"]["label"]
    s = data.load_split("test", data_file=path)
    assert s.class_names == tuple(names[str(i)] for i in range(8)) and s.num_classes == 8


def test_flag_file_with_classes_missing_from_training_is_refused(tmp_path):
    """8-class BloodMNIST whose training split holds only classes 0..2 cannot train the
    other five: the refusal names them."""
    path = write_medmnist_npz(tmp_path / "bloodmnist_64.npz", num_classes=3)
    with pytest.raises(PathMNISTError, match=r"class\(es\) 3, 4, 5, 6, 7 have no training image"):
        data.load_split("val", data_file=path)


@settings(max_examples=25)
@given(content=st.binary(max_size=5000))
@example(content=b"")
def test_file_md5_equals_hashlib(tmp_path_factory, content):
    """file_md5 is hashlib's MD5 of the whole file's bytes (the empty file too)."""
    path = tmp_path_factory.mktemp("md5") / "f.bin"
    path.write_bytes(content)
    assert data.file_md5(path) == hashlib.md5(content).hexdigest()


def test_load_split_reads_root_file(root, monkeypatch):
    """With no data_file, root/pathmnist_{size}.npz is read, downloading only when absent."""
    fetched = []

    def fake_download(r, size):
        fetched.append((r, size))
        r.mkdir(parents=True, exist_ok=True)
        write_medmnist_npz(r / data.filename(size))

    monkeypatch.setattr(data, "download", fake_download)
    assert len(data.load_split("val", root=root, size=28)) == 10
    assert len(data.load_split("test", root=root, size=28)) == 10
    assert fetched == [(root, 28)]


def npy_bytes():
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    return buffer.getvalue()


def zeroed_middle(raw):
    """Zero 64 bytes in the middle of a compressed member: a CRC or zlib error."""
    return raw[: len(raw) // 2] + bytes(64) + raw[len(raw) // 2 + 64 :]


BROKEN_BYTES = {
    "truncated": (lambda raw: raw[:300], "not a readable npz"),
    "corrupt": (zeroed_middle, "not a readable npz"),
    "random bytes": (lambda raw: b"\x80" + os.urandom(499), "not an npz file"),
    "npy": (lambda raw: npy_bytes(), "not an npz file"),
}

U8 = np.uint8
BAD_ARRAYS = {
    "missing key": ({"train_images": None}, "no 'train_images'"),
    "float images": ({"train_images": np.zeros((20, 8, 8, 3))}, "uint8"),
    "four channels": ({"train_images": np.zeros((20, 8, 8, 4), U8)}, "shape"),
    "not square": ({"train_images": np.zeros((20, 8, 6, 3), U8)}, "square"),
    "multi-label": ({"train_labels": np.zeros((20, 2), U8)}, "single-label"),
    "float labels": ({"train_labels": np.zeros((20, 1))}, "integers"),
    "negative label": ({"val_labels": -np.ones((9, 1), np.int8)}, "negative"),
    "empty split": (
        {"train_images": np.zeros((0, 8, 8, 3), U8), "train_labels": np.zeros((0, 1), U8)},
        "empty",
    ),
    "count mismatch": ({"train_labels": np.zeros((19, 1), U8)}, "one label per image"),
}


def assert_load_fails(path, problem):
    with pytest.raises(PathMNISTError, match=problem) as err:
        data.load_split("train", data_file=path)
    assert path.name in str(err.value)


@pytest.mark.parametrize("case", BROKEN_BYTES)
def test_broken_file_raises(case, tiny_npz, tmp_path):
    """A truncated, corrupt or non-npz file is a PathMNISTError naming the file."""
    damage, problem = BROKEN_BYTES[case]
    path = tmp_path / "bad.npz"
    path.write_bytes(damage(tiny_npz.read_bytes()))
    assert_load_fails(path, problem)


@pytest.mark.parametrize("case", BAD_ARRAYS)
def test_bad_arrays_raise(case, tmp_path):
    """Each wrong key, dtype, shape or label is a PathMNISTError naming file and problem."""
    change, problem = BAD_ARRAYS[case]
    path = tmp_path / "bad.npz"
    arrays = dict(np.load(write_medmnist_npz(path, sizes=(20, 9, 9))))
    arrays.update(change)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    assert_load_fails(path, problem)


def test_label_beyond_flag_file_classes(tmp_path):
    """Label 8 in a file named like 8-class BloodMNIST is out of range."""
    path = write_medmnist_npz(tmp_path / "bloodmnist.npz", num_classes=9)
    with pytest.raises(PathMNISTError, match=r"bloodmnist\.npz.*0\.\.7"):
        data.load_split("train", data_file=path)


def test_bad_split_and_missing_file(tiny_npz, tmp_path):
    """An unknown split names the choices; a missing data file names its path."""
    with pytest.raises(PathMNISTError, match="unknown split 'training'"):
        data.load_split("training", data_file=tiny_npz)
    with pytest.raises(PathMNISTError, match=r"nowhere\.npz does not exist"):
        data.load_split("train", data_file=tmp_path / "nowhere.npz")


def test_imageset_checks_its_arrays():
    """ImageSet rejects non-uint8 or non-NHWC images and mismatched labels."""
    names = ("a", "b")
    with pytest.raises(PathMNISTError, match="uint8"):
        data.ImageSet(np.zeros((2, 4, 4, 3)), np.zeros(2), names)
    with pytest.raises(PathMNISTError, match="one label per image"):
        data.ImageSet(np.zeros((2, 4, 4, 3), np.uint8), np.zeros(3), names)
    assert data.ImageSet(np.zeros((2, 4, 4, 3), np.uint8), [0, 1], names).labels.dtype == np.int64


# ---------------------------------------------------------------------------- stratified_subset


def indexed_set(labels):
    """An ImageSet whose image i stores i in its pixel (0, 0), so subsets reveal indices."""
    n = len(labels)
    images = np.zeros((n, 1, 1, 3), np.uint8)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
    return data.ImageSet(images, labels, tuple(f"c{i}" for i in range(12)))


def indices_of(imageset):
    return imageset.images[:, 0, 0, 0].astype(int) + 256 * imageset.images[:, 0, 0, 1].astype(int)


@settings(max_examples=150)
@given(labels=label_vectors(), fraction=fractions, seed=seeds)
@example(labels=np.array([0, 0, 1]), fraction=1e-9, seed=0)
@example(labels=np.array([3] * 5), fraction=0.5, seed=0)
def test_stratified_counts_within_one_image(labels, fraction, seed):
    """Each class keeps within one image of fraction * n_c (at least one), a sorted subset."""
    sub = data.stratified_subset(indexed_set(labels), fraction, seed)
    idx = indices_of(sub)
    assert np.all(np.diff(idx) > 0)  # Sorted and unique.
    np.testing.assert_array_equal(sub.labels, labels[idx])
    for c in np.unique(labels):
        n_c, k_c = np.sum(labels == c), np.sum(sub.labels == c)
        assert k_c >= 1 and abs(k_c - fraction * n_c) <= 1


def test_stratified_subset_seeded_and_full(tiny_npz):
    """Same seed, same subset; fraction 1 keeps everything; 20% of 30 keeps 1 per class here."""
    train = data.load_split("train", data_file=tiny_npz)
    a, b = (data.stratified_subset(train, 0.2, seed=1) for _ in range(2))
    np.testing.assert_array_equal(a.images, b.images)
    assert np.bincount(a.labels).tolist() == [1] * 9 and a.class_names == train.class_names
    assert data.stratified_subset(train, 1.0) is train
    big = indexed_set(np.arange(1000) % 10)
    assert not np.array_equal(
        indices_of(data.stratified_subset(big, 0.2, 0)),
        indices_of(data.stratified_subset(big, 0.2, 1)),
    )


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5, float("nan"), "0.2"])
def test_stratified_bad_fraction(fraction, tiny_npz):
    """A fraction outside (0, 1] is a PathMNISTError."""
    train = data.load_split("train", data_file=tiny_npz)
    with pytest.raises(PathMNISTError, match=r"\(0, 1\]"):
        data.stratified_subset(train, fraction)


def test_load_reads_only_the_split_asked_for(tiny_npz, monkeypatch):
    """load_split reads this split's images and every split's labels, never other images."""
    read, real = [], np.lib.npyio.NpzFile.__getitem__
    monkeypatch.setattr(
        np.lib.npyio.NpzFile, "__getitem__", lambda f, k: read.append(k) or real(f, k)
    )
    data.load_split("val", data_file=tiny_npz)
    assert sorted(read) == ["test_labels", "train_labels", "val_images", "val_labels"]
