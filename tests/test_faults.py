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

import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pathmnist.config import TrainConfig
from pathmnist.data import dataset as data
from pathmnist.files import SLOW_WRITE_ENV
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
from pathmnist.data import dataset as data
from pathmnist.studies import grid
from pathmnist.studies import folder
from pathmnist.config import TrainConfig
path, out, mode = sys.argv[1:]
train, val = (data.load_split(s, data_file=path) for s in ("train", "val"))
base = TrainConfig(batch_size=16, precision="fp32", device="cpu")
grid.grid_search({"lr": [1e-3, 3e-3]}, train, val, out, epochs=2, base=base,
                   resume=mode == "resume", overwrite=mode == "overwrite", quiet=True)
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


def start(command, log: Path, env=None, preexec_fn=None) -> subprocess.Popen:
    """Start `command` with its stdout and stderr in files (a pipe nobody reads could
    block it); the caller waits or kills."""
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=environment(env),
                                preexec_fn=preexec_fn)  # fmt: skip
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


def grid_process(npz, out, mode, log, env=None) -> subprocess.Popen:
    return start([sys.executable, "-c", GRID, str(npz), str(out), mode], log, env=env)


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
