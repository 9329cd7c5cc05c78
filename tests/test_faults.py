"""Faults a long run meets: kill -9 at random moments, a full disk, Ctrl-C; and repeatability.

- examples/01_baseline.py (64 learnable training images at 32x32, batch 16, 4 epochs,
  fp32) is SIGKILLed 5 times and restarted each time: with --resume when last.pt exists,
  and also when a start was killed before its first checkpoint (its folder holds config.json
  and an empty history.csv: `--resume` starts that run from the beginning). The kills:
  as training begins (before any checkpoint); between an epoch's last.pt and best.pt
  (while best.pt's temporary file exists); the others at seeded random moments, inside a
  write (PATHMNIST_TEST_SLOW_WRITE=0.3 holds each temporary file 0.3 s before its rename)
  or a random time into training. After each kill every best.pt/last.pt there loads
  through `checkpoints.load`; each restart removes the killed write's temporary files; the
  final best.pt weights equal an uninterrupted run's tensor for tensor (torch.equal), and
  history.csv row for row (the `seconds` column aside).
- `grid.grid_search` (2 trials, 2 epochs each, in a `python -c` subprocess) killed in the
  middle of each trial ends with the same results.csv rows (seconds aside) as an
  uninterrupted search, and the trial finished before the second kill is not trained again
  (its history.csv keeps its modification time).
- A file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) below last.pt's size, on a resume:
  exit status 2, one `error:` line naming the disk, and last.pt and best.pt keep their bytes.
- SIGINT mid-epoch: exit status 130, a message saying to rerun with --resume; the rerun
  ends where an uninterrupted run does.
- Determinism on the CPU: a run with the uninterrupted run's seed, in another process,
  writes the same history.csv (seconds aside); another seed writes another.

The uninterrupted run of 01 is made once per module. Most of the time goes to starting
subprocesses (each imports torch) and writing checkpoints (last.pt is 134 MB: a ResNet-18
and Adam's two moments).
"""

import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pathmnist.augment.stain import rgb_to_hed
from pathmnist.config import TrainConfig
from pathmnist.data import dataset as data
from pathmnist.data import synthetic
from pathmnist.device import resolve_precision
from pathmnist.errors import PathMNISTError
from pathmnist.files import SLOW_WRITE_ENV
from pathmnist.model.resnet import resnet18
from pathmnist.studies import folder
from pathmnist.training import checkpoints, rundir
from pathmnist.training.fit import fit

pytestmark = pytest.mark.slow

BASELINE = Path(__file__).resolve().parents[1] / "examples" / "01_baseline.py"
EPOCHS = 4
FLAGS = ["--batch-size", "16", "--precision", "fp32", "--device", "cpu", "--quiet"]
SLOW = {SLOW_WRITE_ENV: "0.3"}  # Seconds each temporary file lives before its rename.
KILLS = 5  # SIGKILLs per run, the one before the first checkpoint included.
TRIAL = "lr={}/epochs=2_seed=0"  # A grid trial's folder, as folder.trial_name names it.
GRID = """
import sys
from pathmnist import cli
from pathmnist.data import dataset as data
from pathmnist.studies import grid
from pathmnist.config import TrainConfig
path, out, mode, epochs = sys.argv[1:]
def main():
    train, val = (data.load_split(s, data_file=path) for s in ("train", "val"))
    base = TrainConfig(batch_size=16, precision="fp32", device="cpu")
    grid.grid_search({"lr": [1e-3, 3e-3]}, train, val, out, epochs=int(epochs), base=base,
                     resume=mode == "resume", overwrite=mode == "overwrite", quiet=True)
cli.run(main)
"""


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    """64 training, 45 validation (5 per class: the report's bootstrap needs them) and 45
    test images, 32x32, 9 classes, each class a colour plus noise: learnable, so the
    validation loss falls for a few epochs and best.pt is written more than once."""
    rng = np.random.default_rng(0)
    palette = rng.integers(30, 226, (9, 3))  # One RGB colour per class.
    arrays = {}
    for split, n in (("train", 64), ("val", 45), ("test", 45)):
        labels = np.arange(n) % 9
        rng.shuffle(labels)
        images = palette[labels][:, None, None, :] + rng.normal(0, 25, (n, 32, 32, 3))
        arrays[f"{split}_images"] = np.clip(images, 0, 255).astype(np.uint8)  # (n, 32, 32, 3)
        arrays[f"{split}_labels"] = labels.astype(np.uint8).reshape(n, 1)
    path = tmp_path_factory.mktemp("faults") / "data.npz"
    np.savez_compressed(path, **arrays)
    return path


RUNNING: list[subprocess.Popen] = []  # Every process `start` began, for the cleanup below.


@pytest.fixture(autouse=True)
def no_orphans():
    """Kill (by its own handle) any subprocess that a failing test left running."""
    yield
    while RUNNING:
        proc = RUNNING.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def environment(extra=None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATHMNIST_TEST")}
    return {**env, **(extra or {})}


def _interruptible(then=None):
    """In the child: Ctrl-C's default action, as in a terminal. A shell that starts pytest
    in the background (`pytest &`) makes it ignore SIGINT, every child inherits that, and
    Python then never raises KeyboardInterrupt."""

    def setup():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if then is not None:
            then()

    return setup


def start(command, log: Path, env=None, preexec_fn=None) -> subprocess.Popen:
    """Start `command` with its stdout and stderr in files (a pipe nobody reads could
    block it); the caller waits or kills."""
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=environment(env),
                                preexec_fn=_interruptible(preexec_fn))  # fmt: skip
    RUNNING.append(proc)
    return proc


def baseline(npz, out, *extra) -> list[str]:
    return [sys.executable, str(BASELINE), "--data-file", str(npz), "--out", str(out),
            "--epochs", str(EPOCHS), *FLAGS, *extra]  # fmt: skip


def finish(proc, log: Path, timeout=300) -> tuple[int, str]:
    """Wait for `proc`; its exit status and stderr."""
    code = proc.wait(timeout=timeout)
    return code, log.with_suffix(".err").read_text()


def wait_for(proc, condition, timeout=120.0) -> bool:
    """Poll every 5 ms: True once `condition()` holds, False if `proc` ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc.poll() is not None:
            return condition()
        time.sleep(0.005)
    proc.kill()
    raise AssertionError(f"nothing happened in {timeout} s")


def temporaries(folder: Path) -> set[Path]:
    return set(folder.rglob(".*.tmp"))


def assert_checkpoints_load(folder: Path) -> None:
    """Every best.pt and last.pt under `folder` loads (format and checksum checked)."""
    for path in [*folder.rglob("best.pt"), *folder.rglob("last.pt")]:
        checkpoints.load(path)


def history_rows(path: Path) -> list[list[str]]:
    """history.csv's rows with the `seconds` column left out (the only one time changes)."""
    lines = [line.split(",") for line in path.read_text().splitlines()]
    drop = lines[0].index("seconds")
    return [line[:drop] + line[drop + 1 :] for line in lines]


def assert_same_run(out: Path, reference: Path) -> None:
    """best.pt weights equal tensor for tensor, history.csv row for row (seconds aside)."""
    mine, theirs = checkpoints.load(out / "best.pt"), checkpoints.load(reference / "best.pt")
    assert mine["epoch"] == theirs["epoch"]
    assert mine["model"].keys() == theirs["model"].keys()
    for key, tensor in theirs["model"].items():
        assert torch.equal(mine["model"][key], tensor), key
    assert history_rows(out / "history.csv") == history_rows(reference / "history.csv")


@pytest.fixture(scope="module")
def reference(npz, tmp_path_factory):
    """An uninterrupted 4-epoch run of 01 (no slow writes: they change no result)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    log = out.parent / "log"
    code, err = finish(start(baseline(npz, out), log), log)
    assert code == 0, err
    return out


def restart_flags(out: Path) -> list[str]:
    """--resume when there is a last.pt, or when an earlier start left only its config.json
    and an empty history.csv (killed before its first checkpoint: as Ctrl-C's message says,
    --resume then starts the run again); nothing for a fresh folder."""
    if (out / "last.pt").exists():
        return ["--resume"]
    if rundir.holds_run(out):
        assert rundir.unstarted(out)
        rundir.check_start(out, resume=True, overwrite=False)  # Accepted, touches nothing.
        return ["--resume"]
    return []


def kill_plan(rng: random.Random) -> list[tuple[str, float]]:
    """When to kill each start, as (event, seconds to wait after it). The first three are
    fixed: as training begins (before any checkpoint); a moment after the first last.pt
    (so the next start resumes); on that resumed start, between an epoch's two checkpoint
    writes (one renamed, the other's temporary file present). The rest are seeded draws:
    inside a last.pt write, inside any write, or a random time into training. None lets a
    start save more than about one epoch, so every kill comes before the run ends."""
    # Inside a write: at most 0.25 s after its temporary file appears, within the 0.3 s pause.
    rest = [("tmp:last.pt", rng.uniform(0.0, 0.25)), ("tmp:", rng.uniform(0.0, 0.25)),
            ("started", rng.uniform(0.2, 1.5))]  # fmt: skip
    rest = rng.sample(rest, KILLS - 3)
    return [("started", 0.0), ("saved", rng.uniform(0.0, 1.0)), ("between", 0.0), *rest]


def happened(event: str, out: Path, since: int) -> bool:
    """Whether `event` has happened in the start that began at `since` (ns)."""

    def renamed(name):  # Written (renamed into place) by this start.
        try:
            return (out / name).stat().st_mtime_ns >= since
        except FileNotFoundError:  # Not yet written, or removed by --overwrite.
            return False

    def writing(name):
        return any(out.glob(f".{name}.*.tmp"))

    if event == "started":  # Every start writes config.json once its checks have passed.
        return renamed("config.json")
    if event == "saved":
        return renamed("last.pt")
    if event == "between":
        return (renamed("last.pt") and writing("best.pt")) or (
            renamed("best.pt") and writing("last.pt")
        )
    return renamed("config.json") and writing(event.removeprefix("tmp:") or "*")


def test_kill_9_at_random_moments_then_resume_matches_an_uninterrupted_run(
    npz, reference, tmp_path
):
    """After each SIGKILL every checkpoint there loads; each restart clears the killed
    write's temporary files; the final best.pt and history.csv equal an uninterrupted run's."""
    rng = random.Random(20261126)
    out, kills, inside_write, leftovers = tmp_path / "run", 0, 0, set()
    plan = kill_plan(rng)
    for attempt in range(len(plan) + 1):
        since, log = time.time_ns(), tmp_path / f"attempt{attempt}"
        proc = start(baseline(npz, out, *restart_flags(out)), log, env=SLOW)
        if attempt == len(plan):
            break  # The last start runs to the end.
        assert wait_for(proc, lambda: happened("started", out, since)), finish(proc, log)  # noqa: B023
        assert not leftovers & temporaries(out), "a restart kept a killed write's temporary"
        event, delay = plan[attempt]
        if not wait_for(proc, lambda: happened(event, out, since)):  # noqa: B023
            break  # The run ended before its kill: it is the last start.
        time.sleep(delay)
        if proc.poll() is not None:
            break
        inside_write += bool(temporaries(out))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        assert_checkpoints_load(out)
        leftovers = temporaries(out)
    code, err = finish(proc, log)
    assert code == 0, err
    assert kills >= KILLS and inside_write >= 1, (kills, inside_write)
    assert not temporaries(out)
    assert_same_run(out, reference)


def grid_process(npz, out, mode, log, env=None, epochs=2) -> subprocess.Popen:
    command = [sys.executable, "-c", GRID, str(npz), str(out), mode, str(epochs)]
    return start(command, log, env=env)


def results_without_seconds(out: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in
            folder.read_results(out / "results.csv")]  # fmt: skip


def test_grid_search_killed_mid_trial_resumes_without_retraining(npz, tmp_path):
    """Killed inside trial 1 and inside trial 2, the search resumes to the same results as
    an uninterrupted one, and trial 1 (finished before the second kill) is not retrained."""
    reference, out = tmp_path / "reference", tmp_path / "search"
    code, err = finish(grid_process(npz, reference, "new", tmp_path / "ref"), tmp_path / "ref")
    assert code == 0, err
    first, second = out / TRIAL.format(0.001), out / TRIAL.format(0.003)
    # Trial 1 mid-way: its epoch-1 last.pt exists and its epoch-2 last.pt is being written.
    # Trial 2 mid-way: trial 1's row is in results.csv and trial 2 is writing a checkpoint.
    moments = [
        lambda: (first / "last.pt").exists() and any(first.glob(".last.pt.*.tmp")),
        lambda: (out / "results.csv").exists() and any(second.glob(".*.pt.*.tmp")),
    ]
    mode = "new"
    for n, moment in enumerate(moments):
        proc = grid_process(npz, out, mode, tmp_path / f"kill{n}", env=SLOW)
        assert wait_for(proc, moment), finish(proc, tmp_path / f"kill{n}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert_checkpoints_load(out)
        mode = "resume" if (out / "search.json").exists() else "overwrite"
    done = results_without_seconds(out)
    assert [r["params"] for r in done] == [{"lr": 0.001}]
    stamp = (first / "history.csv").stat().st_mtime_ns
    code, err = finish(grid_process(npz, out, mode, tmp_path / "last"), tmp_path / "last")
    assert code == 0, err
    assert (first / "history.csv").stat().st_mtime_ns == stamp, "trial 1 was trained again"
    assert results_without_seconds(out) == results_without_seconds(reference)
    assert not temporaries(out)


def test_full_disk_leaves_the_previous_checkpoint_intact(npz, tmp_path):
    """A resume under a file-size limit below last.pt's size exits 2 with one sentence
    about the disk; last.pt and best.pt keep their bytes and last.pt still loads."""
    out = tmp_path / "run"
    train, val = (data.load_split(s, data_file=npz) for s in ("train", "val"))
    config = TrainConfig(epochs=1, batch_size=16, precision="fp32", device="cpu")
    fit(config, train, val, out, quiet=True)  # The same settings as FLAGS.
    before = {name: (out / name).read_bytes() for name in ("last.pt", "best.pt")}
    # Above config.json and history.csv (kilobytes), below last.pt (model + Adam moments).
    limit = (out / "last.pt").stat().st_size - 1

    def small_disk():  # Runs in the child: writes past `limit` fail with EFBIG.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # Else the kernel kills the writer.
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    log = tmp_path / "full"
    proc = start(baseline(npz, out, "--resume"), log, preexec_fn=small_disk)
    code, err = finish(proc, log)
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "disk" in lines[0], err
    for name, content in before.items():
        assert (out / name).read_bytes() == content, name
    checkpoints.load(out / "last.pt")
    assert not temporaries(out)


def test_ctrl_c_mid_epoch_exits_130_and_resumes(npz, reference, tmp_path):
    """SIGINT in epoch 2: exit status 130 and a message to rerun with --resume; the rerun
    ends with the uninterrupted run's best.pt and history.csv."""
    out, rng = tmp_path / "run", random.Random(7)
    proc = start(baseline(npz, out), tmp_path / "first")
    assert wait_for(proc, lambda: (out / "last.pt").exists())  # Epoch 1 is saved.
    time.sleep(rng.uniform(0.1, 0.6))
    proc.send_signal(signal.SIGINT)
    code, err = finish(proc, tmp_path / "first")
    assert code == 130 and "Traceback" not in err, err
    assert "--resume" in err
    assert not temporaries(out)
    code, err = finish(start(baseline(npz, out, "--resume"), tmp_path / "again"),
                       tmp_path / "again")  # fmt: skip
    assert code == 0, err
    assert_same_run(out, reference)


def test_same_seed_same_history_other_seed_other_history(npz, reference, tmp_path):
    """On the CPU a run with seed 0 (here, in-process) writes the same history.csv as the
    reference run of 01 with seed 0 (another process), seconds aside; seed 1 writes
    another first epoch."""
    train, val = (data.load_split(s, data_file=npz) for s in ("train", "val"))
    runs = {}
    for seed, epochs in ((0, EPOCHS), (1, 1)):
        config = TrainConfig(epochs=epochs, batch_size=16, precision="fp32", device="cpu",
                             seed=seed)  # fmt: skip
        fit(config, train, val, tmp_path / str(seed), quiet=True)
        runs[seed] = history_rows(tmp_path / str(seed) / "history.csv")
    same = history_rows(reference / "history.csv")
    assert runs[0] == same
    assert runs[1][1] != same[1]  # Epoch 1's losses and accuracies.


# %% Issue 17: no run is ever lost or mixed. One case (at least) per numbered item.

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example(name, *args) -> list[str]:
    return [sys.executable, str(EXAMPLES / f"{name}.py"), *map(str, args)]


def tree(top: Path) -> dict:
    """Every file under `top` with a SHA-256 of its bytes, and every folder (lock files,
    which a live run holds and removes, aside)."""
    out = {}
    for p in sorted(top.rglob("*")):
        if p.is_dir():
            out[p.relative_to(top).as_posix()] = "folder"
        elif p.name != ".pathmnist.lock":
            out[p.relative_to(top).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def refused(proc, log: Path, words: str) -> str:
    """Wait for `proc`: exit 2, one `error:` line matching `words`, no traceback."""
    code, err = finish(proc, log)
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(words, lines[0]), lines[0]
    return lines[0]


def small_run(path: Path, kind: str) -> None:
    """A small finished run of `kind` (its files and MARK) standing next to ours."""
    path.mkdir(parents=True)
    for name in ("config.json", "history.csv", "metrics.json", "report.md"):
        (path / name).write_text(f"{kind}'s {name}")
    (path / rundir.MARK).write_text(json.dumps({"kind": kind, "id": f"{kind}-id"}))


def run_ids(out: Path) -> set:
    """The run ids that the MARK, config.json and checkpoints in `out` carry."""
    ids = {rundir.run_id(out), json.loads((out / "config.json").read_text())["run"]}
    return ids | {checkpoints.load(out / n)["run"] for n in ("best.pt", "last.pt")}


def test_1_overwrite_next_to_another_runs_folder_deletes_nothing(npz, reference, tmp_path):
    """--out runs over runs/01_baseline and runs/my_best_run: refused with or without
    --overwrite (no sentence suggests it), 03 --overwrite over 01's run is refused, and
    nothing changes; 01 --overwrite over its own run removes its files and only them."""
    runs = tmp_path / "runs"
    shutil.copytree(reference, runs / "01_baseline")
    small_run(runs / "my_best_run", "03_final_evaluation")
    (runs / "notes.txt").write_text("the user's")
    (runs / "01_baseline" / "notes.txt").write_text("the user's, inside the run")
    before = tree(runs)
    for n, flags in enumerate(([], ["--overwrite"], ["--resume"])):
        line = refused(start(baseline(npz, runs, *flags), tmp_path / f"runs{n}"),
                       tmp_path / f"runs{n}", "holds another run in")  # fmt: skip
        assert "pass --overwrite" not in line and "never removes another run" in line
    config = runs / "01_baseline" / "config.json"
    command = example("03_final_evaluation", "--config", config, "--baseline", "none",
                      "--data-file", npz, "--out", runs / "01_baseline", "--overwrite",
                      *FLAGS)  # fmt: skip
    refused(start(command, tmp_path / "other"), tmp_path / "other",
            "holds a run of 01_baseline, not of 03_final_evaluation")  # fmt: skip
    assert tree(runs) == before
    own = start(baseline(npz, runs / "01_baseline", "--overwrite", "--epochs", "1"),
                tmp_path / "own")  # fmt: skip
    code, err = finish(own, tmp_path / "own")
    assert code == 0, err
    after = tree(runs)
    assert {k: v for k, v in after.items() if not k.startswith("01_baseline")} == {
        k: v for k, v in before.items() if not k.startswith("01_baseline")
    }
    assert after["01_baseline/notes.txt"] == before["01_baseline/notes.txt"]
    assert len(history_rows(runs / "01_baseline" / "history.csv")) == 2  # Header, epoch 1.


@pytest.mark.parametrize("race", ["01", "grid"])
def test_2_a_second_run_is_refused_while_the_first_writes(npz, tmp_path, race):
    """The first run is frozen (SIGSTOP) while it writes its report (01: metrics.json is
    written, the figures are being drawn) or between two trials of a study; a second run
    with --overwrite is refused, nothing changes, and the first ends whole, one run's files."""
    out = tmp_path / "run"
    if race == "01":
        first = start(baseline(npz, out, "--epochs", "1"), tmp_path / "first", env=SLOW)
        moment = lambda: (out / "metrics.json").exists()
        second = baseline(npz, out, "--overwrite", "--epochs", "1")
    else:
        first = grid_process(npz, out, "new", tmp_path / "first", env=SLOW, epochs=1)
        moment = lambda: (out / "results.csv").exists()
        second = [sys.executable, "-c", GRID, str(npz), str(out), "overwrite", "1"]
    assert wait_for(first, moment), finish(first, tmp_path / "first")
    first.send_signal(signal.SIGSTOP)
    try:
        before = tree(out)
        refused(start(second, tmp_path / "second"), tmp_path / "second",
                "another run is writing into .* right now")  # fmt: skip
        assert tree(out) == before
    finally:
        first.send_signal(signal.SIGCONT)
    code, err = finish(first, tmp_path / "first")
    assert code == 0, err
    if race == "01":
        assert (out / "report.md").exists() and len(run_ids(out)) == 1
    else:
        assert len(folder.read_results(out / "results.csv")) == 2
    assert not temporaries(out) and not (out / ".pathmnist.lock").exists()


def test_3_a_study_is_one_run(npz, tmp_path):
    """A search killed mid-way: a new one over it is refused before anything is written;
    --overwrite removes all of it (its trial folders included) and only it: the user's
    notes and the run next to it stay."""
    out = tmp_path / "search"
    out.mkdir()
    (out / "notes.txt").write_text("the user's")
    small_run(tmp_path / "other", "01_baseline")
    proc = grid_process(npz, out, "new", tmp_path / "kill", env=SLOW)
    second = out / TRIAL.format(0.003)
    assert wait_for(proc, lambda: (out / "results.csv").exists() and any(
        second.glob(".*.pt.*.tmp")))  # fmt: skip
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before, other = tree(out), tree(tmp_path / "other")
    refused(grid_process(npz, out, "new", tmp_path / "new"), tmp_path / "new",
            "already holds a run of search")  # fmt: skip
    assert tree(out) == before
    code, err = finish(grid_process(npz, out, "overwrite", tmp_path / "over", epochs=1),
                       tmp_path / "over")  # fmt: skip
    assert code == 0, err
    trials = sorted(p.relative_to(out).as_posix() for p in out.glob("*/epochs=*"))
    assert trials == ["lr=0.001/epochs=1_seed=0", "lr=0.003/epochs=1_seed=0"]
    assert [r["epochs"] for r in folder.read_results(out / "results.csv")] == [1, 1]
    assert (out / "notes.txt").read_text() == "the user's"
    assert tree(tmp_path / "other") == other


def test_4_another_runs_best_pt_is_refused_on_resume(npz, reference, tmp_path):
    """best.pt copied in from another run (same data, same settings) is refused on --resume
    before anything is written: it carries another run's id."""
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    train, val = (data.load_split(s, data_file=npz) for s in ("train", "val"))
    config = TrainConfig(epochs=1, batch_size=16, precision="fp32", device="cpu")
    fit(config, train, val, tmp_path / "other", quiet=True)
    shutil.copyfile(tmp_path / "other" / "best.pt", out / "best.pt")
    before = tree(out)
    refused(start(baseline(npz, out, "--resume", "--epochs", "5"), tmp_path / "resume"),
            tmp_path / "resume", "best.pt belongs to another run")  # fmt: skip
    assert tree(out) == before


def test_5_a_results_row_cut_mid_line_is_rerun_never_kept(npz, tmp_path):
    """results.csv whose last row was cut mid-line: the resumed search trains that trial
    again (its history.csv is rewritten), keeps the other, and ends with the rows of the
    search it was."""
    out = tmp_path / "search"
    code, err = finish(grid_process(npz, out, "new", tmp_path / "a", epochs=1), tmp_path / "a")
    assert code == 0, err
    whole = results_without_seconds(out)
    text = (out / "results.csv").read_text()
    (out / "results.csv").write_text(text[: len(text) - 12])  # The last row, cut.
    first, second = out / "lr=0.001/epochs=1_seed=0", out / "lr=0.003/epochs=1_seed=0"
    stamps = [(p / "history.csv").stat().st_mtime_ns for p in (first, second)]
    code, err = finish(grid_process(npz, out, "resume", tmp_path / "b", epochs=1), tmp_path / "b")
    assert code == 0, err
    assert results_without_seconds(out) == whole
    assert (first / "history.csv").stat().st_mtime_ns == stamps[0]
    assert (second / "history.csv").stat().st_mtime_ns != stamps[1]


def test_6_a_refused_run_leaves_no_folder(npz, tmp_path):
    """Refusals that need the data or the config (a batch of one at a 1x1 layer4, a weight
    decay of 1e308) come before the run folder exists: none is made."""
    out = tmp_path / "new" / "run"
    refused(start(baseline(npz, out, "--batch-size", "1"), tmp_path / "b1"), tmp_path / "b1",
            "layer4's BatchNorm")  # fmt: skip
    bad = tmp_path / "best_config.json"
    bad.write_text(json.dumps({**TrainConfig().to_dict(), "weight_decay": 1e308}))
    command = example("03_final_evaluation", "--config", bad, "--baseline", "none",
                      "--data-file", npz, "--out", out, *FLAGS)  # fmt: skip
    refused(start(command, tmp_path / "wd"), tmp_path / "wd", r"weight_decay=1e\+308")
    assert not (tmp_path / "new").exists()


def test_7_ctrl_c_before_the_run_folder_exists_is_one_line(tmp_path):
    """SIGINT while the example imports torch or makes the synthetic set: status 130, one
    line that does not advise --resume (there is nothing to resume), no run folder, no
    temporary file."""
    out, root = tmp_path / "run", tmp_path / "root"
    command = example("01_baseline", "--dataset", "synthetic", "--data-root", root,
                      "--out", out, "--quiet")  # fmt: skip
    proc = start(command, tmp_path / "int")
    time.sleep(2.5)  # Inside the imports (torch) or the synthetic set's generation.
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)  # Once: medmnist's import must not swallow it.
    code, err = finish(proc, tmp_path / "int")
    lines = err.strip().splitlines()
    assert code == 130 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("interrupted") and "--resume" not in err
    assert not out.exists() and not list(tmp_path.rglob(".*.tmp"))


def test_7_a_killed_figure_write_is_cleaned_like_a_checkpoints(npz, tmp_path):
    """kill -9 inside a figure's write leaves figures/.NAME.*.tmp; the next start (here a
    --resume) removes it, as it does a checkpoint's."""
    out = tmp_path / "run"
    proc = start(baseline(npz, out, "--epochs", "1"), tmp_path / "fig", env=SLOW)
    assert wait_for(proc, lambda: any((out / "figures").glob(".*.tmp")))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any((out / "figures").glob(".*.png.*.tmp"))
    code, err = finish(start(baseline(npz, out, "--resume", "--epochs", "1"), tmp_path / "again"),
                       tmp_path / "again")  # fmt: skip
    assert code == 0, err
    assert not temporaries(out) and (out / "report.md").exists()


def test_8_messages_say_what_is_true(tmp_path, capsys):
    """A word for a number (as a user runs it: a subprocess) and a file training would
    refuse each get their own one-line sentence, and nothing is written."""
    synth = [sys.executable, "-m", "pathmnist.data.synthetic", "--out", str(tmp_path / "x.npz")]
    refused(start([*synth, "--n-train", "abc"], tmp_path / "abc"), tmp_path / "abc",
            "invalid int value: 'abc'")  # fmt: skip
    assert synthetic.main([*synth[3:], "--n-train", "5"]) == 2
    assert "each of the 9 classes" in capsys.readouterr().err
    assert list(tmp_path.glob("*.npz")) == []


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: data.ImageSet(np.zeros((2, 4, 4, 3), np.uint8), [0, 9], data.CLASS_NAMES),
         "label 9 lies outside the 9 classes"),
        (lambda: rgb_to_hed(torch.rand(1, 3, 4, 4) * 255), "divide 0..255 images by 255"),
        (lambda: rgb_to_hed(torch.full((1, 3, 4, 4), float("nan"))), "NaN"),
        (lambda: resnet18()(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)), "torch.uint8 batch"),
        (lambda: resolve_precision("auto", "tpu"), "unknown device 'tpu'"),
    ],
)  # fmt: skip
def test_9_the_library_refuses_what_it_would_get_wrong(call, words):
    """Each of these was a raw error or a silent wrong answer: now one sentence."""
    with pytest.raises(PathMNISTError, match=words) as info:
        call()
    assert "\n" not in str(info.value)
