"""The benchmarks work, not how fast anything is (no timing asserts): `run.py --quick` writes
a table with every row and a positive finite ratio in each; the seed-style reference
serves exactly the items medmnist's own dataset serves, and its inputs equal ours;
`memory.py` writes MedMNIST-format files that numpy and load_split read back, and measures
a load in a fresh process; a results section is replaced without touching the text around;
`gpu_check.sh --dry-run` lists its parts within their time limits, and the seed-style
reference stops once its per-epoch time is stable.
"""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import medmnist
import numpy as np
import pytest
import torch
from torchvision import transforms

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))
import _results  # noqa: E402
import memory  # noqa: E402
import run  # noqa: E402
import seed_reference  # noqa: E402

from pathmnist.augment.transforms import build_transforms  # noqa: E402
from pathmnist.data.dataset import load_split  # noqa: E402

EXPECTED_ROWS = (
    "input pipeline",
    "training step",
    "fit epoch, precision auto",
    "fit epoch, fp32",
    "evaluation",
    "macro AUC",
)


def table_rows(text):
    """{figure: last cell} of every Markdown table row under the first table header."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and not line.startswith("| figure") and len(cells) == 5:
            rows[cells[0]] = cells[-1]
    return rows


@pytest.mark.slow
def test_quick_run_writes_every_row(tmp_path):
    """`run.py --quick --out FILE` exits 0 and FILE holds the machine facts, one row per
    figure, each with a ratio like "1.23x" that is a positive finite number, and the epoch
    split with finite shares."""
    out = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert "<!-- bench:run-cpu -->" in text or "<!-- bench:run-cuda -->" in text
    for fact in ("date:", "CPU:", "cores", "avx512_bf16:", "amx:", "torch ", "command:", "sizes:"):
        assert fact in text
    rows = table_rows(text)
    assert run.ROWS == EXPECTED_ROWS
    for figure in EXPECTED_ROWS:
        match = [cell for name, cell in rows.items() if name.startswith(figure)]
        assert len(match) == 1, (figure, rows)
        ratio = float(match[0].removesuffix("x"))
        assert math.isfinite(ratio) and ratio > 0, (figure, ratio)
    shares = re.findall(r"\| (-?[\d.]+)% \|", text)
    assert len(shares) == 2 and all(math.isfinite(float(s)) for s in shares)


def test_seed_dataset_serves_what_medmnist_serves(tmp_path):
    """SeedDataset's items equal medmnist.PathMNIST's on the same npz with the same
    transform: the image tensor exactly, the label as an int array of shape (1,)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 28, 28, 3), dtype=np.uint8)
    labels = (np.arange(12) % 9).astype(np.uint8).reshape(12, 1)
    np.savez_compressed(tmp_path / "pathmnist.npz", train_images=images, train_labels=labels,
                        val_images=images, val_labels=labels, test_images=images,
                        test_labels=labels)  # fmt: skip
    ours = seed_reference.SeedDataset(images, labels, (0.7, 0.5, 0.6), (0.2, 0.3, 0.25))
    theirs = medmnist.PathMNIST(split="train", root=str(tmp_path), size=28,
                                transform=ours.transform)  # fmt: skip
    assert len(ours) == 12  # medmnist's len() asserts PathMNIST's real split size.
    for i in range(12):
        (x, y), (x_ref, y_ref) = ours[i], theirs[i]
        assert torch.equal(x, x_ref)
        assert y.shape == y_ref.shape == (1,) and y.dtype == y_ref.dtype and y[0] == y_ref[0]


def test_seed_inputs_equal_ours():
    """torchvision's ToTensor + Normalize (the reference's input) equals our eval transform
    on the same uint8 images within 1e-5 (x / 255 and x * (1 / 255) may round apart by an
    ulp, and the ulp of values up to ~5 is ~5e-7)."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    mean, std = (0.74, 0.53, 0.71), (0.12, 0.18, 0.13)
    ref = seed_reference.SeedDataset(images, np.zeros(6, np.int64), mean, std)
    _, eval_tf = build_transforms(mean, std)
    ours = eval_tf(torch.from_numpy(images))  # (6, 3, 16, 16)
    expected = torch.stack([ref[i][0] for i in range(6)])
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)
    assert isinstance(ref.transform.transforms[0], transforms.ToTensor)


def test_memory_npz_is_medmnist_format(tmp_path):
    """memory.write_npz writes what np.savez_compressed would hold: uint8 (N, H, W, 3)
    images of one flat colour each and (N, 1) labels 0..8 for every split, which
    load_split reads as an ImageSet."""
    path = memory.write_npz(tmp_path / "m.npz", 20, 16)
    with np.load(path) as f:
        assert set(f.files) == {f"{s}_{k}" for s in ("train", "val", "test") for k in
                                ("images", "labels")}  # fmt: skip
        images, labels = f["train_images"], f["train_labels"]
    assert images.shape == (20, 16, 16, 3) and images.dtype == np.uint8
    assert labels.shape == (20, 1) and list(labels[:10, 0]) == [*range(9), 0]
    assert (images == images[:, :1, :1, :]).all()  # One colour per image.
    split = load_split("train", data_file=path)
    assert len(split) == 20 and split.num_classes == 9
    np.testing.assert_array_equal(split.images, images)


def test_memory_child_measures_a_load(tmp_path):
    """A measurement in a fresh process reports the split's bytes exactly and a peak host
    RSS at least its floor after the imports, and no GPU numbers on the CPU."""
    path = memory.write_npz(tmp_path / "m.npz", 30, 16)
    r = memory.measure(path, "cpu")
    assert r["split_bytes"] == 30 * 16 * 16 * 3
    assert r["rss_peak"] >= r["rss_floor"] > 0
    assert r["gpu_peak"] is None and r["on_device"] is None
    json.dumps(r)  # The numbers are plain JSON.


def test_write_section_replaces_only_its_section(tmp_path):
    """write_section starts a new file with the header, appends a new section, and
    replaces an existing one in place, leaving the hand-written text and other sections."""
    path = tmp_path / "R.md"
    _results.write_section("a", "A", "first", path=path, stamp=False)
    assert path.read_text().startswith(_results.HEADER)
    path.write_text(path.read_text().replace("# Benchmark results", "# Mine\n\nhow to read"))
    _results.write_section("b", "B", "other", path=path)
    _results.write_section("a", "A", "second", path=path, stamp=False)
    text = path.read_text()
    assert "how to read" in text and "first" not in text and "other" in text
    assert text.index("second") < text.index("other")  # Replaced where it stood.


def test_run_refuses_bad_sizes():
    """A zero size or a training split smaller than one batch stops with a usage error
    before any work."""
    for argv in (["--train", "0"], ["--train", "64", "--batch-size", "128"]):
        with pytest.raises(SystemExit) as stop:
            run.main(argv)
        assert stop.value.code == 2


@pytest.mark.slow
def test_bench_beyond_quick_writes_its_section(tmp_path):
    """`bench_beyond.py --quick --results FILE` writes its section: the parameter and FLOP
    counts and a positive finite cost ratio for every network and augmentation row."""
    out = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_beyond.py"), "--quick", "--results", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert "<!-- bench:beyond -->" in text and "6,963,081 parameters" in text
    ratios = re.findall(r"\| ([\d.]+)x \|", text)
    assert len(ratios) == 5 and all(math.isfinite(float(r)) and float(r) > 0 for r in ratios)


def test_gpu_check_dry_run_lists_parts_within_the_limits():
    """`gpu_check.sh --dry-run` runs nothing, needs no GPU, and prints one line per part
    with its command and time limit: every test marked cuda in all of tests/, run.py at
    the real size, memory.py; each part at most 3 minutes, all together at most 8."""
    done = subprocess.run(["bash", str(BENCH / "gpu_check.sh"), "--dry-run"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    parts = re.findall(r"^part (\w+): limit (\d+) s: (.+)$", done.stdout, re.M)
    assert [name for name, _, _ in parts] == ["tests", "speed", "memory"]
    limits = [int(limit) for _, limit, _ in parts]
    assert all(0 < limit <= 180 for limit in limits) and sum(limits) <= 8 * 60
    commands = {name: command for name, _, command in parts}
    assert "pytest -m cuda tests/ " in commands["tests"]
    assert "benchmarks/run.py --device cuda --train 89996" in commands["speed"]
    assert "benchmarks/memory.py --device cuda" in commands["memory"]
    assert f"total limit: {sum(limits)} s" in done.stdout


def test_seed_reference_stops_once_its_epochs_agree(tmp_path, monkeypatch):
    """With `stable`, seed_epoch runs until two consecutive epochs take seconds within the
    tolerance (here the 3rd agrees with the 2nd), and reports each epoch's seconds."""
    clock = iter([0.0, 0.0, 10.0, 10.0, 14.0, 14.0, 18.1, 18.1, 99.0, 99.0])
    monkeypatch.setattr(seed_reference.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(seed_reference, "seed_train", lambda *a: (1.0, 0.5))
    monkeypatch.setattr(seed_reference, "seed_validate", lambda *a: (1.0, 0.5, 0.75))
    images, labels = np.zeros((4, 8, 8, 3), np.uint8), np.arange(4) % 2
    out = seed_reference.seed_epoch(images, labels, images, labels, "cpu", tmp_path, epochs=5,
                                    stable=0.05)  # fmt: skip
    assert out["epochs"] == 3 and out["epoch_seconds"] == pytest.approx([10.0, 4.0, 4.1])
