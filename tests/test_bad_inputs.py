"""Every public entry point answers a bad input with one sentence and leaves nothing
half-written.

One table, CASES, drives the library calls (each must raise `PathMNISTError` whose message
is one line) and the command lines of examples/01_baseline.py, 02_tuning.py,
03_final_evaluation.py and `python -m pathmnist.data.synthetic` (each must exit with status 2
and print exactly one stderr line, starting with `error: `, and no "Traceback"). After
every row: no `.*.tmp` file anywhere under the test's folders, every file that existed
before the call (an earlier run's checkpoints included) has the same bytes, no new file
or folder was made (a refused run leaves no run folder), and a hostile checkpoint ran no
code. The rows are grouped by the numbered items of issue 17 where they test one.

The command lines run in-process by default (`runpy` executes the script's own
`if __name__ == "__main__"` block, so `cli.run` is what turns the error into a sentence; an
exception it misses fails the test with its traceback). Rows marked `sub=True` run in a real
subprocess, the truer check for "no traceback"; PATHMNIST_TEST_SUBPROCESS=1 runs every row
so. The earlier runs that resume rows start from (01: 2 epochs; 02: the seed's 8-trial
grid, 1 epoch each) are built once per module on a 40/45/45-image, 32x32 npz and copied
per row.
"""

import contextlib
import csv
import hashlib
import io
import json
import os
import random
import re
import runpy
import shlex
import shutil
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_medmnist_npz

from pathmnist.augment.stain import HEDJitter, fit_macenko, hed_to_rgb, rgb_to_hed
from pathmnist.config import TrainConfig, check_seeds, parse_augment
from pathmnist.data import dataset as data
from pathmnist.device import resolve_precision
from pathmnist.errors import PathMNISTError
from pathmnist.files import LOCK
from pathmnist.model.resnet import resnet18
from pathmnist.studies import folder, grid, halving
from pathmnist.training import checkpoints, inference, rundir
from pathmnist.training.fit import fit
from pathmnist.training.history import History

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {
    "01": ROOT / "examples" / "01_baseline.py",
    "02": ROOT / "examples" / "02_tuning.py",
    "03": ROOT / "examples" / "03_final_evaluation.py",
    "04": ROOT / "examples" / "04_stain_shift.py",
    "05": ROOT / "examples" / "05_inside_the_model.py",
}
# The flags every row of an entry starts with; a row's own flags come after and win.
# 1 epoch, batch 16, fp32 and no progress bars keep a call that is not refused to seconds.
BASE = {
    "01": "--data-file {data} --out {out} --epochs 1 --batch-size 16 --precision fp32 --quiet",
    "02": "--data-file {data} --out {out} --epochs 1 --precision fp32 --quiet",
    "03": "--config {config} --baseline none --data-file {data} --out {out} --epochs 1 "
    "--batch-size 16 --precision fp32 --quiet",
    "04": "--data-file {data} --shifts real --out {out} --seeds 1 --epochs 1 --batch-size 16 "
    "--precision fp32 --quiet",
    "05": "--data-file {data} --precision fp32 --quiet",
    "synthetic": "--n-train 9 --n-val 9 --n-test 9 --size 8 --quiet",
}
# The earlier runs' own flags: 01 trains 2 epochs (so --epochs 1 can be refused).
EARLIER = {"01": "--epochs 2", "02": ""}
RESUME_01 = "--resume --epochs 2"  # Resuming the earlier 01 run with its own settings.
SUBPROCESS_ALL = os.environ.get("PATHMNIST_TEST_SUBPROCESS") == "1"
# Train, val and test images: 5 of each class in val, so the report's bootstrap intervals
# (resamples holding every class) exist; 32x32 is above resnet18's 17-pixel minimum.
SIZES = (40, 45, 45)
MARKER = "code-ran.txt"  # A hostile checkpoint creates this file if it is ever unpickled.


@dataclass
class Workspace:
    """The paths a row's flags and setup refer to, as {name} in its flags."""

    tmp: Path  # This row's folder.
    data: Path  # The good npz (shared, read-only): the earlier runs trained on it.
    bad: Path = field(init=False)  # Where a row writes its bad input.
    out: Path = field(init=False)  # The run folder (a copy of an earlier run, if asked).
    file: Path = field(init=False)  # A plain file, where a folder is expected.
    config: Path = field(init=False)  # A good best_config.json for 03.

    def __post_init__(self):
        self.bad, self.out = self.tmp / "bad.npz", self.tmp / "out"
        self.file, self.config = self.tmp / "plain.txt", self.tmp / "best_config.json"
        self.file.write_text("not a folder\n")
        good = TrainConfig(epochs=1, batch_size=16, precision="fp32").to_dict()
        self.config.write_text(json.dumps(good))

    def fill(self, token: str) -> str:
        return token.format(**{k: str(v) for k, v in vars(self).items()})


@dataclass(frozen=True)
class Case:
    entry: str  # "01", "02", "03", "synthetic" (a command line) or "lib"
    call: str | Callable  # The row's flags, or fn(workspace) for a library call.
    match: str  # A regex the sentence must contain.
    setup: Callable | None = None  # fn(workspace): writes the bad input.
    earlier: str | None = None  # "01" or "02": --out starts as a copy of that run.
    sub: bool = False  # Run this command line in a real subprocess.


# %% Bad inputs, written by the rows' setups


def _good_arrays(ws) -> dict:
    with np.load(ws.data) as f:
        return {k: f[k] for k in f.files}


def npz(edit):
    """Setup: the good data with `edit(arrays)` applied (it may return a new dict) -> bad."""

    def setup(ws):
        arrays = _good_arrays(ws)
        arrays = edit(arrays) or arrays
        np.savez(ws.bad, **arrays)

    return setup


def _set(key, fn):
    return npz(lambda a: a.__setitem__(key, fn(a[key])))


def _label(split, value, dtype):
    """Labels as `dtype` with the first one replaced by `value`."""

    def fn(y):
        y = y.astype(dtype)
        y[0] = value
        return y

    return _set(f"{split}_labels", fn)


def raw(make):
    """Setup: write `make(good npz bytes)` to bad."""
    return lambda ws: ws.bad.write_bytes(make(ws.data.read_bytes()))


def _member_span(path, pick) -> tuple[int, int]:
    """(offset, size) of the stored bytes of the largest zip member whose name `pick` likes."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if pick(i.filename)), key=lambda i: i.compress_size)
    with open(path, "rb") as f:  # The local header: 30 bytes, then name and extra field.
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
    return info.header_offset + 30 + name_len + extra_len, info.compress_size


def flip_bit(path, pick) -> None:
    """Flip the lowest bit of the middle byte of a zip member's stored data, in place."""
    start, size = _member_span(path, pick)
    with open(path, "r+b") as f:
        f.seek(start + size // 2)
        byte = f.read(1)[0]
        f.seek(start + size // 2)
        f.write(bytes([byte ^ 1]))


def corrupt_member(ws):
    """The good npz with one bit flipped inside train_images' compressed data."""
    shutil.copyfile(ws.data, ws.bad)
    flip_bit(ws.bad, lambda n: n.startswith("train_images"))


class RunsCode:
    """Unpickling this runs code (creates `marker`): what a hostile checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def hostile(path, marker) -> None:
    """A torch file that looks like a checkpoint but runs code when fully unpickled."""
    torch.save({"format": checkpoints.FORMAT, "model": RunsCode(marker)}, path)


def hostile_last(ws):
    """last.pt replaced by a hostile file, after proving the payload is live elsewhere."""
    probe, probe_marker = ws.tmp / "probe.pt", ws.tmp / "probe-ran.txt"
    hostile(probe, probe_marker)
    torch.load(probe, weights_only=False)  # An unsafe load does run it...
    assert probe_marker.exists()
    probe.unlink(), probe_marker.unlink()
    hostile(ws.out / "last.pt", ws.tmp / MARKER)  # ...so the package must never do that.


def last_pt(make):
    """Setup: replace the earlier run's last.pt by `make(its bytes)`."""
    return lambda ws: (ws.out / "last.pt").write_bytes(make((ws.out / "last.pt").read_bytes()))


def foreign_last(ws):
    torch.save({"state_dict": {"w": torch.zeros(3)}, "epoch": 2}, ws.out / "last.pt")


def edit_text(name, old, new, count=1):
    """Setup: replace `old` by `new` in the earlier run's file `name`."""

    def setup(ws):
        path = ws.out / name
        text = path.read_text()
        assert old in text, (name, old)
        path.write_text(text.replace(old, new, count))

    return setup


def edit_results(ws):
    """results.csv with the first row's val_acc replaced by a word."""
    path = ws.out / "results.csv"
    lines = path.read_text().splitlines()
    cells = lines[1].rsplit(",", 4)  # params holds commas; the last 4 cells do not.
    cells[1] = "n/a"  # (val_acc, val_loss, best_epoch, seconds) follow the params, epochs, seed.
    lines[1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def history_line3(ws):
    path = ws.out / "history.csv"
    lines = path.read_text().splitlines()
    cells = lines[2].split(",")
    cells[3] = "0.5x"  # val_loss of epoch 2, hand-edited into a non-number.
    lines[2] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def read_only_out(ws):
    locked = ws.tmp / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    ws.out = locked / "run"


def other_data(ws):
    """Another file with the same split sizes and image size (another seed)."""
    write_medmnist_npz(ws.bad, sizes=SIZES, size=32, seed=1)


def _split(ws, name="train", file=None):
    return data.load_split(name, data_file=file or ws.data)


def tiny_checkpoint_truncated(ws):
    checkpoints.save({"model": {"w": torch.arange(1000.0)}}, ws.bad)
    ws.bad.write_bytes(ws.bad.read_bytes()[:-300])


# Runs that are not this command's to touch, and files of an earlier run edited by hand.


def fake_run(path, kind, files=None):
    """A small finished run of `kind` at `path`: its family's files and its MARK."""
    path.mkdir(parents=True, exist_ok=True)
    for name in files or rundir.FAMILIES[rundir.KINDS[kind]]:
        (path / name).write_text(name)
    (path / rundir.MARK).write_text(json.dumps({"kind": kind, "id": f"{kind}-id"}))


def runs_folder(ws):
    """--out runs over runs/01_baseline and runs/my_best_run (03's), nothing at the top."""
    fake_run(ws.out / "01_baseline", "01_baseline")
    fake_run(ws.out / "my_best_run", "03_final_evaluation")


def out_of(kind):
    """Setup: --out holds a finished run of `kind`."""
    return lambda ws: fake_run(ws.out, kind)


def legacy_search(ws):
    """A search folder from before MARK existed: its files name it a search."""
    fake_run(ws.out, "02_tuning")
    (ws.out / rundir.MARK).unlink()


def inner_run(ws):
    """An 01 run with another run inside it, in a sub-folder."""
    fake_run(ws.out, "01_baseline")
    fake_run(ws.out / "old", "01_baseline")


def write(name, text):
    """Setup: the earlier run's (or a fresh --out's) file `name` holds `text`."""

    def setup(ws):
        ws.out.mkdir(exist_ok=True)
        (ws.out / name).write_text(text)

    return setup


def edit_cells(edit):
    """Setup: results.csv rows edited by `edit(rows)` (lists of cells, header first)."""

    def setup(ws):
        path = ws.out / "results.csv"
        rows = list(csv.reader(path.read_text().splitlines()))
        edit(rows)
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        path.write_text(buffer.getvalue())

    return setup


def _cell(row, column, value):
    def edit(rows):
        rows[row][folder.RESULT_COLUMNS.index(column)] = value

    return edit


def cut_middle_row(ws):
    """Row 2 of results.csv cut mid-line, the rows after it intact: not a cut at the end."""
    path = ws.out / "results.csv"
    lines = path.read_text().splitlines()
    lines[1] = lines[1][: len(lines[1]) // 2]
    path.write_text("\n".join(lines) + "\n")


def trial_last(make):
    """Setup: the first trial folder of the earlier search gets a last.pt by `make(path)`."""

    def setup(ws):
        trial = sorted(ws.out.glob("*/epochs=*_seed=*"))[0]
        make(trial / "last.pt")

    return setup


def rewrite_checkpoint(name, **changes):
    """Setup: the earlier run's checkpoint `name` saved again with `changes` (a valid
    checksum: only what it says changed)."""

    def setup(ws):
        payload = checkpoints.load(ws.out / name)
        checkpoints.save({**payload, **changes}, ws.out / name)

    return setup


def edit_json(name, **changes):
    def setup(ws):
        path = ws.out / name
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))

    return setup


def last_as_folder(ws):
    (ws.out / "last.pt").unlink()
    (ws.out / "last.pt").mkdir()


def config_file(**fields):
    """Setup: a best_config.json for 03 with `fields` changed."""
    good = TrainConfig(epochs=1, batch_size=16, precision="fp32").to_dict()
    return lambda ws: ws.bad.write_text(json.dumps({**good, **fields}))


def results_file(text):
    """Setup: bad holds a results.csv header and `text`."""
    return lambda ws: ws.bad.write_text(",".join(folder.RESULT_COLUMNS) + "\n" + text)


def _read_bad_results(ws):
    return folder.read_results(ws.bad)


def _search_over(ws, **kw):
    return grid.grid_search({"lr": [1e-3]}, _split(ws), _split(ws, "val"), ws.out, epochs=1,
                            base=TrainConfig(batch_size=16, precision="fp32"), **kw)  # fmt: skip


# %% The table

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU exists here")
NOT_ROOT = pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permissions"
)


def row(id, entry, call, match, setup=None, earlier=None, sub=False, mark=None):
    """One row; those that start a subprocess or need an earlier run (it trains) are slow."""
    case = Case(entry, call, match, setup, earlier, sub)
    slow = earlier or sub or (SUBPROCESS_ALL and entry != "lib")
    marks = [m for m in (mark, pytest.mark.slow if slow else None) if m is not None]
    return pytest.param(case, id=id, marks=marks)


# fmt: off
CASES = [
    # Data files: missing, empty, truncated, not a zip, corrupt.
    row("01-npz-missing", "01", "--data-file {tmp}/nope.npz", "does not exist"),
    row("lib-npz-empty", "lib", lambda ws: data.load_split("train", data_file=ws.bad),
        "not an npz", setup=lambda ws: ws.bad.write_bytes(b"")),
    row("01-npz-truncated", "01", "--data-file {bad}", "npz",
        setup=raw(lambda b: b[: len(b) // 2]), sub=True),
    row("lib-npz-not-zip", "lib", lambda ws: data.load_split("val", data_file=ws.bad),
        "not an npz", setup=raw(lambda b: b"images,labels\n1,2\n")),
    row("01-npz-corrupt-member", "01", "--data-file {bad}", "not a readable npz",
        setup=corrupt_member),
    # Keys, dtypes, shapes.
    row("02-npz-wrong-keys", "02", "--data-file {bad}", "no 'train_images'",
        setup=npz(lambda a: {"x": a["train_images"], "y": a["train_labels"]})),
    row("lib-images-float32", "lib", lambda ws: _split(ws, file=ws.bad), "store images as uint8",
        setup=_set("train_images", lambda x: x.astype(np.float32))),
    row("01-images-rgba", "01", "--data-file {bad}", r"shape \(40, 32, 32, 4\)",
        setup=_set("train_images", lambda x: np.concatenate([x, x[..., :1]], axis=3))),
    row("03-images-non-square", "03", "--data-file {bad}", "square",
        setup=_set("val_images", lambda x: x[:, :, :24])),
    # Labels: negative, fractional, NaN, too large, wrong shape, one odd label.
    row("lib-labels-negative", "lib", lambda ws: data.load_split("val", data_file=ws.bad),
        "negative label -1", setup=_label("val", -1, np.int64)),
    row("01-labels-fractional", "01", "--data-file {bad}", "integers",
        setup=_label("train", 0.5, np.float64)),
    row("lib-labels-nan", "lib", lambda ws: data.load_split("test", data_file=ws.bad),
        "integers", setup=_label("test", np.nan, np.float64)),
    row("01-labels-10**12", "01", "--data-file {bad}", "1000000000000",
        setup=_label("train", 10**12, np.int64)),
    row("lib-labels-two-columns", "lib", lambda ws: data.load_split("train", data_file=ws.bad),
        "single-label", setup=_set("train_labels", lambda y: np.repeat(y, 2, axis=1))),
    row("01-labels-0..8-and-one-12", "01", "--data-file {bad}", r"label\(s\) 12\b",
        setup=_label("train", 12, np.uint8)),
    # Splits: empty, lengths that differ.
    row("01-split-empty", "01", "--data-file {bad}", "val split is empty",
        setup=npz(lambda a: a.update(val_images=a["val_images"][:0],
                                     val_labels=a["val_labels"][:0]))),
    row("lib-lengths-mismatch", "lib", lambda ws: _split(ws, file=ws.bad),
        "40 images but train_labels has 39", setup=_set("train_labels", lambda y: y[:-1])),
    row("lib-subset-1.5", "lib", lambda ws: data.stratified_subset(_split(ws), 1.5),
        "subset fraction"),
    row("lib-imageset-grey", "lib",
        lambda ws: data.ImageSet(np.zeros((2, 4, 4), np.uint8), [0, 1], ("a", "b")),
        "uint8 \\(N, H, W, 3\\)"),
    # Flags out of range.
    row("01-subset-0", "01", "--subset 0", "subset fraction=0.0"),
    row("02-subset-1.5", "02", "--subset 1.5", "subset fraction=1.5"),
    row("01-subset-nan", "01", "--subset nan", "subset fraction=nan"),
    row("01-lr-0", "01", "--lr 0", "lr=0.0"),
    row("03-lr--1", "03", "--lr -1", "lr=-1.0"),
    row("02-lr-inf", "02", "--lr inf", "lr=inf"),
    row("01-lr-nan", "01", "--lr nan", "lr=nan"),
    row("01-batch-size-0", "01", "--batch-size 0", "batch_size=0"),
    row("01-epochs-0", "01", "--epochs 0", "epochs=0"),
    row("01-seed--1", "01", "--seed -1", "seed=-1"),
    row("02-seed-1e14", "02", "--seed 100000000000000", "seed=100000000000000"),
    row("01-arch-unknown", "01", "--arch resnet9", "--arch: invalid choice"),
    row("03-optimizer-unknown", "03", "--optimizer lamb", "--optimizer: invalid choice"),
    row("01-stem-unknown", "01", "--stem tiny", "--stem: invalid choice"),
    row("02-precision-unknown", "02", "--precision fp8", "--precision: invalid choice"),
    row("01-device-unknown", "01", "--device tpu", "--device: invalid choice"),
    row("01-augment-unknown", "01", "--augment flips,unknown-name", "'unknown-name'"),
    row("lib-augment-unknown", "lib", lambda ws: parse_augment(["flips", "sharpen"]), "sharpen"),
    # The flags of lessons 2 to 5.
    row("02-repeats-zero", "02", "--repeats 0", "repeats=0"),
    row("02-strategy-unknown", "02", "--strategy random", "--strategy: invalid choice"),
    row("02-halving-eta-one", "02", "--strategy halving --eta 1", "eta"),
    row("01-loss-unknown", "01", "--loss hinge", "--loss: invalid choice"),
    row("01-label-smoothing-one", "01", "--label-smoothing 1", "label_smoothing=1.0"),
    row("01-focal-gamma-nan", "01", "--loss focal --focal-gamma nan", "focal_gamma=nan"),
    row("01-mixup-negative", "01", "--mixup -0.5", "mixup=-0.5"),
    row("lib-hed-sigma-negative", "lib", lambda ws: HEDJitter(-0.1), "sigma"),
    row("04-seeds-zero", "04", "--seeds 0", "--seeds 0"),
    row("04-recipe-unknown", "04", "--recipes baseline,sharpen", "unknown recipe 'sharpen'"),
    row("04-shift-unknown", "04", "--shifts moon", "unknown shift 'moon'"),
    row("05-run-missing", "05", "--run {tmp}/nope", "no run folder"),
    row("05-run-not-a-checkpoint", "05", "--run {out}", "not a readable checkpoint",
        setup=lambda ws: (ws.out.mkdir(), (ws.out / "best.pt").write_bytes(b"junk"))),
    row("lib-config-bool-batch", "lib", lambda ws: TrainConfig(batch_size=True).validate(),
        "batch_size=True"),
    row("01-device-cuda-without-gpu", "01", "--device cuda", "no CUDA GPU", mark=NO_GPU),
    # Where the run goes.
    row("01-out-is-a-file", "01", "--out {file}", "is a file"),
    row("02-out-under-a-file", "02", "--out {file}/run", "is a file"),
    row("01-out-empty", "01", "--out ''", "--out: the path is empty"),
    row("01-out-not-writable", "01", "--out {out}", "writ", setup=read_only_out,
        mark=NOT_ROOT),
    row("01-data-root-is-a-file", "01", "--dataset synthetic --data-root {file}",
        "is a file"),
    row("lib-check-start-under-file", "lib",
        lambda ws: rundir.check_start(ws.file / "run", False, False), "is a file"),
    row("synthetic-out-is-a-folder", "synthetic", "--out {tmp}", "folder", sub=True),
    row("synthetic-out-under-a-file", "synthetic", "--out {file}/lab.npz", "file"),
    # Checkpoints for --resume: corrupt, truncated, foreign, hostile, one bit flipped.
    row("01-resume-corrupt-last", "01", RESUME_01, "not a readable checkpoint", earlier="01",
        setup=last_pt(lambda b: random.Random(0).randbytes(len(b) // 64))),
    row("01-resume-truncated-last", "01", RESUME_01, "not a readable checkpoint", earlier="01",
        setup=last_pt(lambda b: b[: len(b) // 2])),
    row("01-resume-foreign-last", "01", RESUME_01, "not a pathmnist checkpoint", earlier="01",
        setup=foreign_last),
    row("01-resume-hostile-last", "01", RESUME_01, "not a readable checkpoint", earlier="01",
        setup=hostile_last, sub=True),
    row("01-resume-bit-flipped-last", "01", RESUME_01, "fails its checksum", earlier="01",
        setup=lambda ws: flip_bit(ws.out / "last.pt", lambda n: "/data/" in n)),
    row("01-resume-best-as-last", "01", RESUME_01, "not a last.pt", earlier="01",
        setup=lambda ws: shutil.copyfile(ws.out / "best.pt", ws.out / "last.pt")),
    row("lib-load-hostile", "lib", lambda ws: checkpoints.load(ws.bad), "not a readable",
        setup=lambda ws: hostile(ws.bad, ws.tmp / MARKER)),
    row("lib-load-checkpoint-truncated", "lib", lambda ws: inference.load_checkpoint(ws.bad),
        "not a readable checkpoint", setup=tiny_checkpoint_truncated),
    # best_config.json for 03.
    row("03-config-missing", "03", "--config {tmp}/none.json", "no config file"),
    row("03-config-invalid-json", "03", "--config {bad}", "not a readable JSON",
        setup=lambda ws: ws.bad.write_text('{"lr": 0.001,')),
    row("03-config-unknown-field", "03", "--config {bad}",
        "unknown TrainConfig field.*learning_rate",
        setup=lambda ws: ws.bad.write_text('{"learning_rate": 0.1}'), sub=True),
    row("lib-config-list", "lib", lambda ws: TrainConfig.from_json(ws.bad), "not a config",
        setup=lambda ws: ws.bad.write_text("[1, 2]")),
    # Files of an earlier run, edited.
    row("lib-history-hand-edited", "lib", lambda ws: History.from_csv(ws.out / "history.csv"),
        "line 3", earlier="01", setup=history_line3),
    row("02-resume-results-not-a-number", "02", "--resume", "line 2 is damaged", earlier="02",
        setup=edit_results),
    row("lib-results-other-header", "lib", lambda ws: folder.read_results(ws.bad),
        "not a results file", setup=lambda ws: ws.bad.write_text("trial,acc\n1,0.5\n")),
    # Runs that would mix with an earlier one.
    row("01-into-earlier-run", "01", "--epochs 2", "already holds a run", earlier="01"),
    row("01-resume-and-overwrite", "01", "--resume --overwrite", "contradict", earlier="01"),
    row("01-resume-nothing", "01", "--resume", "nothing to resume"),
    row("02-resume-other-subset", "02", "--resume --subset 0.5", "cannot resume the search",
        earlier="02"),
    row("02-resume-other-seed", "02", "--resume --seed 1", "cannot resume the search",
        earlier="02", sub=True),
    row("02-resume-other-epochs", "02", "--resume --epochs 2", "its epochs differ",
        earlier="02"),
    row("01-resume-other-data", "01", RESUME_01 + " --data-file {bad}", "other data",
        earlier="01", setup=other_data),
    row("01-resume-fewer-epochs", "01", "--resume --epochs 1", "already trained 2 epochs",
        earlier="01"),
    # The library's training and search entry points.
    row("lib-fit-one-image", "lib",
        lambda ws: fit(TrainConfig(epochs=1), data.ImageSet(
            _split(ws).images[:1], [0], data.CLASS_NAMES), _split(ws, "val"), ws.out),
        "at least 2 image"),
    row("lib-fit-resume-and-overwrite", "lib",
        lambda ws: fit(TrainConfig(epochs=1), _split(ws), _split(ws, "val"), ws.out,
                                resume=True, overwrite=True), "contradict"),
    row("lib-grid-unknown-field", "lib",
        lambda ws: grid.grid_search({"learning_rate": [1e-3]}, _split(ws), _split(ws, "val"),
                                      ws.out), "not a TrainConfig field"),
    row("lib-grid-epochs-0", "lib",
        lambda ws: grid.grid_search({"lr": [1e-3]}, _split(ws), _split(ws, "val"), ws.out,
                                      epochs=0), "epochs=0"),
    # 1. Overwrite only what is yours: another run is refused with or without --overwrite,
    # and no sentence suggests a flag that would lose it.
    row("01-overwrite-folder-of-runs", "01", "--overwrite", "holds another run in .*--overwrite "
        "never removes", setup=runs_folder),
    row("01-into-folder-of-runs", "01", "", "holds another run in", setup=runs_folder),
    row("02-overwrite-folder-of-runs", "02", "--overwrite", "holds another run in",
        setup=runs_folder),
    row("03-overwrite-folder-of-runs", "03", "--overwrite", "holds another run in",
        setup=runs_folder),
    row("04-overwrite-folder-of-runs", "04", "--overwrite", "holds another run in",
        setup=runs_folder),
    row("01-resume-folder-of-runs", "01", "--resume", "holds another run in", setup=runs_folder),
    row("03-overwrite-01-run", "03", "--overwrite", "holds a run of 01_baseline, not of "
        "03_final_evaluation", setup=out_of("01_baseline")),
    row("01-overwrite-03-run", "01", "--overwrite", "holds a run of 03_final_evaluation",
        setup=out_of("03_final_evaluation")),
    row("01-overwrite-02-search", "01", "--overwrite", "holds a run of 02_tuning",
        setup=out_of("02_tuning")),
    row("01-overwrite-legacy-search", "01", "--overwrite", "holds a run of search, not of "
        "01_baseline", setup=legacy_search),
    row("02-overwrite-01-run", "02", "--overwrite", "holds a run of 01_baseline",
        setup=out_of("01_baseline")),
    row("02-resume-04-study", "02", "--resume", "holds a run of 04_stain_shift",
        setup=out_of("04_stain_shift")),
    row("04-overwrite-02-search", "04", "--overwrite", "holds a run of 02_tuning",
        setup=out_of("02_tuning")),
    row("01-overwrite-run-inside-run", "01", "--overwrite", "another run in .*old",
        setup=inner_run),
    row("01-overwrite-damaged-mark", "01", "--overwrite", "is damaged",
        setup=write(rundir.MARK, '{"kind": "01_baseline"')),
    row("01-mark-of-unknown-kind", "01", "--overwrite", "is damaged",
        setup=write(rundir.MARK, '{"kind": "99_mine", "id": "x"}')),
    row("lib-fit-overwrite-search", "lib",
        lambda ws: fit(TrainConfig(epochs=1), _split(ws), _split(ws, "val"), ws.out,
                       overwrite=True), "holds a run of 02_tuning, not of train",
        setup=out_of("02_tuning")),
    row("lib-grid-overwrite-folder-of-runs", "lib", lambda ws: _search_over(ws, overwrite=True),
        "holds another run in", setup=runs_folder),
    row("lib-hold-folder-of-runs", "lib",
        lambda ws: rundir.hold(ws.out, "01_baseline", overwrite=True), "holds another run",
        setup=runs_folder),
    row("lib-check-start-other-kind", "lib",
        lambda ws: rundir.check_start(ws.out, True, False, kind="04_stain_shift"),
        "holds a run of 01_baseline", setup=out_of("01_baseline")),
    # 3. A study is one run: a new one over an unfinished one is refused before anything
    # is written.
    row("02-new-search-over-unfinished", "02", "", "already holds a run of 02_tuning",
        setup=out_of("02_tuning")),
    row("lib-grid-new-over-unfinished", "lib", lambda ws: _search_over(ws),
        "already holds a run of 02_tuning", setup=out_of("02_tuning")),
    # 4. Identity: a checkpoint or config.json of another run is refused on --resume.
    row("01-resume-best-of-another-run", "01", RESUME_01, "best.pt belongs to another run",
        earlier="01", setup=rewrite_checkpoint("best.pt", run="another-run")),
    row("01-resume-last-of-another-run", "01", RESUME_01, "last.pt belongs to another run",
        earlier="01", setup=rewrite_checkpoint("last.pt", run="another-run")),
    row("01-resume-unmarked-best-and-last-disagree", "01", RESUME_01,
        "best.pt belongs to another run", earlier="01",
        setup=lambda ws: (rewrite_checkpoint("best.pt", run="another-run")(ws),
                          (ws.out / rundir.MARK).unlink())),
    row("01-resume-config-of-another-run", "01", RESUME_01, "config.json belongs to another",
        earlier="01", setup=edit_json("config.json", run="another-run")),
    row("01-resume-mark-of-03", "01", RESUME_01, "holds a run of 03_final_evaluation",
        earlier="01", setup=edit_json(rundir.MARK, kind="03_final_evaluation")),
    # 5. Every file read is checked before anything is written.
    row("01-resume-last-is-a-folder", "01", RESUME_01, "last.pt is a folder", earlier="01",
        setup=last_as_folder),
    row("lib-load-a-folder", "lib", lambda ws: checkpoints.load(ws.tmp), "is a folder"),
    row("02-resume-search-json-cut", "02", "--resume", "search.json is unreadable",
        earlier="02", setup=write("search.json", '{"strategy": "grid", "spa')),
    row("02-resume-search-json-list", "02", "--resume", "holds a list, not a search key",
        earlier="02", setup=write("search.json", "[1, 2]")),
    row("02-resume-results-nan", "02", "--resume", "val_acc is nan, not a finite number",
        earlier="02", setup=edit_cells(_cell(1, "val_acc", "nan"))),
    row("02-resume-results-row-cut-mid-file", "02", "--resume", "line 2 is damaged",
        earlier="02", setup=cut_middle_row),
    row("02-resume-results-foreign-row", "02", "--resume", "line 3 is not a run of this search",
        earlier="02", setup=edit_cells(_cell(2, "params", '{"lr": 5.0}'))),
    row("02-resume-trial-last-is-a-folder", "02", "--resume", "is a folder", earlier="02",
        setup=trial_last(lambda p: p.mkdir())),
    row("02-resume-trial-last-junk", "02", "--resume", "not a readable checkpoint",
        earlier="02", setup=trial_last(lambda p: p.write_bytes(b"junk" * 100))),
    row("lib-results-nan", "lib", _read_bad_results, "val_acc is nan",
        setup=results_file('"{}",1,0,nan,0.5,1,2.0\n')),
    row("lib-results-inf-loss", "lib", _read_bad_results, "val_loss is inf",
        setup=results_file('"{}",1,0,0.5,inf,1,2.0\n')),
    row("lib-results-short-middle-row", "lib",
        _read_bad_results, "line 2 is damaged",
        setup=results_file('"{}",1,0,0.5\n"{}",1,1,0.5,0.4,1,2.0\n')),
    row("lib-results-extra-cell", "lib",
        _read_bad_results, "line 2 is damaged",
        setup=results_file('"{}",1,0,0.5,0.4,1,2.0,9\n')),
    row("lib-results-params-not-json", "lib",
        _read_bad_results, "line 2 is damaged",
        setup=results_file("lr,1,0,0.5,0.4,1,2.0\n")),
    row("lib-grid-resume-search-json-damaged", "lib", lambda ws: _search_over(ws, resume=True),
        "search.json is unreadable", setup=write("search.json", "{")),
    # 6. Validate before the folder exists (a refused run leaves no folder).
    row("03-config-weight-decay-1e308", "03", "--config {bad}", "weight_decay=1e\\+308",
        setup=config_file(weight_decay=1e308)),
    row("03-config-gamma-5", "03", "--config {bad}", "gamma=5", setup=config_file(gamma=5.0)),
    row("lib-config-weight-decay-1e308", "lib",
        lambda ws: TrainConfig(weight_decay=1e308).validate(), "weight_decay=1e\\+308"),
    row("01-lr-1e6", "01", "--lr 1e6", "lr=1000000.0"),
    row("01-focal-gamma-1e4", "01", "--loss focal --focal-gamma 1e4", "focal_gamma=10000.0"),
    row("01-mixup-1e9", "01", "--mixup 1e9", "mixup=1000000000.0"),
    row("02-cutmix-1e9", "02", "--cutmix 1e9", "cutmix=1000000000.0"),
    row("01-epochs-1e9", "01", "--epochs 1000000000", "epochs=1000000000"),
    row("03-batch-size-1e9", "03", "--batch-size 1000000000", "batch_size=1000000000"),
    row("02-epochs-1e9", "02", "--epochs 1000000000", "epochs=1000000000"),
    row("02-halving-epochs-past-the-limit", "02",
        "--strategy halving --epochs 200000 --max-epochs 900000", "epochs=200000"),
    row("lib-grid-space-bad-lr", "lib",
        lambda ws: grid.grid_search({"lr": [1e-3, -1.0]}, _split(ws), _split(ws, "val"), ws.out),
        "lr=-1.0"),
    row("lib-halving-space-bad-batch", "lib",
        lambda ws: halving.halving_search({"batch_size": [0, 16]}, _split(ws), _split(ws, "val"),
                                          ws.out), "batch_size=0"),
    row("02-seed-plus-repeats-out-of-range", "02", "--seed 4294967295 --repeats 2",
        "seeds up to 4294967296"),
    row("lib-grid-seed-plus-repeats", "lib",
        lambda ws: grid.grid_search({"lr": [1e-3]}, _split(ws), _split(ws, "val"), ws.out,
                                    base=TrainConfig(seed=2**32 - 1), repeats=3),
        "seeds up to 4294967297"),
    row("lib-check-seeds", "lib", lambda ws: check_seeds(2**32 - 2, 5, "--seeds"), "--seeds 5"),
    row("01-batch-1-with-1x1-layer4", "01", "--batch-size 1", "layer4's BatchNorm"),
    row("01-images-smaller-than-the-stem", "01", "--data-file {bad}", "8x8 are smaller than "
        "the imagenet stem", setup=npz(lambda a: {k: v[:, :8, :8] if "images" in k else v
                                                  for k, v in a.items()})),
    row("01-splits-of-other-sizes", "01", "--data-file {bad}", "differ in size .*val 24x24",
        setup=_set("val_images", lambda x: x[:, :24, :24])),
    row("03-test-split-other-size", "03", "--data-file {bad}", "test 16x16",
        setup=_set("test_images", lambda x: x[:, :16, :16])),
    row("lib-check-same-size", "lib", lambda ws: data.check_same_size(
        {"train": _split(ws), "val": _split(ws, "val", ws.bad)}), "differ in size",
        setup=_set("val_images", lambda x: x[:, :20, :20])),
    row("01-one-class", "01", "--data-file {bad}", "one class only \\(label 0\\)",
        setup=_set("train_labels", lambda y: np.zeros_like(y))),
    row("lib-one-class", "lib", lambda ws: _split(ws, "val", ws.bad), "one class only",
        setup=_set("train_labels", lambda y: np.full_like(y, 3))),
    row("01-constant-images", "01", "--data-file {bad}", "every train image is one flat "
        "value \\(0\\)", setup=_set("train_images", lambda x: np.zeros_like(x))),
    row("02-constant-val-images", "02", "--data-file {bad}", "every val image is one flat",
        setup=_set("val_images", lambda x: np.full_like(x, 200))),
    # 8. Messages that say what is true.
    row("01-data-file-is-a-folder", "01", "--data-file {tmp}", "is a folder; give an npz"),
    row("01-data-file-dev-zero", "01", "--data-file /dev/zero", "not a regular file"),
    row("lib-data-file-empty", "lib", lambda ws: data.load_split("train", data_file=""),
        "is empty"),
    row("01-data-file-empty", "01", "--data-file ''", "--data-file: the path is empty"),
    row("01-data-root-empty", "01", "--dataset synthetic --data-root ''",
        "--data-root: the path is empty"),
    row("01-label-12-named", "01", "--data-file {bad}", "12",
        setup=_label("val", 12, np.uint8)),
    # 9. The library refuses what it would get wrong.
    row("lib-imageset-label-outside", "lib",
        lambda ws: data.ImageSet(np.zeros((2, 4, 4, 3), np.uint8), [0, 9], data.CLASS_NAMES),
        "label 9 lies outside the 9 classes"),
    row("lib-imageset-label-negative", "lib",
        lambda ws: data.ImageSet(np.zeros((2, 4, 4, 3), np.uint8), [-1, 0], ("a", "b")),
        "label -1 lies outside"),
    row("lib-imageset-fractional-labels", "lib",
        lambda ws: data.ImageSet(np.zeros((2, 4, 4, 3), np.uint8), [0.5, 1.0], ("a", "b")),
        "not integers"),

    row("lib-rgb-to-hed-0..255-floats", "lib",
        lambda ws: rgb_to_hed(torch.full((1, 3, 4, 4), 200.0)), "values in \\[200, 200\\]"),
    row("lib-rgb-to-hed-nan", "lib",
        lambda ws: rgb_to_hed(torch.full((1, 3, 4, 4), float("nan"))), "NaN"),
    row("lib-hed-to-rgb-nan", "lib",
        lambda ws: hed_to_rgb(torch.full((1, 3, 4, 4), float("nan"))), "NaN"),
    row("lib-fit-macenko-0..255-floats", "lib",
        lambda ws: fit_macenko(torch.full((1, 3, 8, 8), 120.0)), "divide 0..255 images"),
    row("lib-resnet-uint8-batch", "lib",
        lambda ws: resnet18()(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)),
        "ResNet got a torch.uint8 batch"),
    row("lib-precision-unknown-device", "lib", lambda ws: resolve_precision("auto", "tpu"),
        "unknown device 'tpu'"),
    row("synthetic-n-train-below-classes", "synthetic", "--out {tmp}/lab.npz --n-train 4",
        "9 classes"),
    row("synthetic-size-2048", "synthetic", "--out {tmp}/lab.npz --size 2048", "above 1024"),
    row("synthetic-n-train-word", "synthetic", "--out {tmp}/lab.npz --n-train many",
        "invalid int value"),
    row("synthetic-unknown-flag", "synthetic", "--out {tmp}/lab.npz --colour red",
        "unrecognized arguments"),
    row("synthetic-out-empty", "synthetic", "--out ''", "--out is empty"),
]
# fmt: on


# %% Running a row


def run_command(entry, argv, cwd, in_subprocess) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of one command line, run as a user would."""
    if in_subprocess:
        head = ["-m", "pathmnist.data.synthetic"] if entry == "synthetic" else [str(SCRIPTS[entry])]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PATHMNIST_TEST")}
        p = subprocess.run(
            [sys.executable, *head, *argv],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        return p.returncode, p.stdout, p.stderr
    out, err, code = io.StringIO(), io.StringIO(), 0
    saved_argv = sys.argv
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), contextlib.chdir(cwd):
        try:
            if entry == "synthetic":  # Its __main__ block is sys.exit(main()).
                from pathmnist.data import synthetic

                code = synthetic.main(argv)
            else:
                sys.argv = [str(SCRIPTS[entry]), *argv]
                runpy.run_path(str(SCRIPTS[entry]), run_name="__main__")
        except SystemExit as e:
            code = e.code
        finally:
            sys.argv = saved_argv
    return code, out.getvalue(), err.getvalue()


def argv_of(ws, entry, flags) -> list[str]:
    return [ws.fill(t) for t in shlex.split(BASE[entry]) + shlex.split(flags)]


def snapshot(folder) -> dict:
    """Every file under `folder` (lock files aside) with the SHA-256 of its bytes, and
    every folder (a refused run leaves none behind)."""
    digests = {}
    for p in sorted(Path(folder).rglob("*")):
        if p.is_dir():
            digests[str(p.relative_to(folder))] = "folder"
        elif p.is_file() and p.name != LOCK:
            with p.open("rb") as f:
                digests[str(p.relative_to(folder))] = hashlib.file_digest(f, "sha256").hexdigest()
    return digests


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """The module's good npz (SIZES images, 32x32, 9 classes) in its own folder."""
    folder = tmp_path_factory.mktemp("bad_inputs_shared")
    write_medmnist_npz(folder / "data.npz", sizes=SIZES, size=32)
    return folder


def _earlier(shared, entry) -> Path:
    (shared / f"earlier_{entry}").mkdir()
    ws = Workspace(shared / f"earlier_{entry}", shared / "data.npz")
    code, _, err = run_command(entry, argv_of(ws, entry, EARLIER[entry]), ws.tmp, False)
    assert code == 0, err
    return ws.out


@pytest.fixture(scope="module")
def earlier_01(shared):
    """A finished 2-epoch run of 01 (built once per module)."""
    return _earlier(shared, "01")


@pytest.fixture(scope="module")
def earlier_02(shared):
    """A finished 02 search of the seed's 8 trials, 1 epoch each (built once per module)."""
    return _earlier(shared, "02")


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gets_one_sentence(case, shared, tmp_path, request):
    """The library raises PathMNISTError with a one-line message; a command line exits 2
    with one `error:` line and no traceback; no temporary file, changed or new file is left,
    and no code from a checkpoint ran."""
    ws = Workspace(tmp_path, shared / "data.npz")
    if case.earlier:
        shutil.copytree(request.getfixturevalue(f"earlier_{case.earlier}"), ws.out)
    try:
        if case.setup:
            case.setup(ws)
        before = snapshot(tmp_path)
        if case.entry == "lib":
            with pytest.raises(PathMNISTError, match=case.match) as caught:
                case.call(ws)
            assert "\n" not in str(caught.value) and str(caught.value).strip()
        else:
            in_subprocess = case.sub or SUBPROCESS_ALL
            code, out, err = run_command(
                case.entry, argv_of(ws, case.entry, case.call), tmp_path, in_subprocess
            )
            assert "Traceback" not in out + err, err
            assert code == 2, (code, err)
            lines = err.strip("\n").splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), err
            assert re.search(case.match, lines[0]), lines[0]
        for folder in (tmp_path, shared):
            assert not list(folder.rglob(".*.tmp")), "a temporary file was left behind"
        assert snapshot(tmp_path) == before, "a file was written or changed"
        assert not (tmp_path / MARKER).exists(), "a checkpoint ran code on load"
    finally:
        if (tmp_path / "locked").exists():  # Let pytest remove the folder later.
            (tmp_path / "locked").chmod(0o755)
        shutil.rmtree(ws.out, ignore_errors=True)  # Copies of the earlier runs are large.
