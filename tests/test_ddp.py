"""training.ddp: N processes under torchrun compute what one process computes.

- `shard` is torch.utils.data.DistributedSampler's split (padded, interleaved); `Shard`
  gives the ranks disjoint rows that cover each global batch, with loss weights whose mean
  over ranks is 1 per image.
- A few DDP steps (2 gloo processes, an uneven last batch, flips drawn for the global
  batch, SGD) leave the same weights as one process with the same global batch, within
  float32 rounding (rtol 1e-3, atol 1e-4: BatchNorm statistics and gradients are sums
  added in another order, and a bias near 0 sums terms that cancel), and the same epoch
  loss (rel 1e-5) and accuracy.
- examples/01_baseline.py under `torchrun --nproc-per-node 2` (slow): history.csv equals
  the one-process run's: epoch 1 within rel 1e-4 (accuracies exactly), later epochs
  within 5e-2, as float32 rounding grows in training (the last weights, as one vector,
  within 5e-2 in norm); a rank killed by
  SIGKILL ends the job within a minute with one `error:` line, and `--resume` ends bit for
  bit where the uninterrupted 2-process run ends; a global batch that does not split, a
  resume on another number of processes and a second job into a live run folder are each
  refused with one sentence.
- Parallel trials: a 2-process grid search (3 trials: rank 0 trains 2, rank 1 one) writes
  the same results.csv, in the same order, and ranks the same, as one process (each trial
  runs in one process, so the numbers are equal exactly); a 2-process ablation (2 shifts
  sharing train and val, 2 recipes x 2 seeds: 4 trainings, 8 rows) writes one process's
  results.csv. Successive halving and Optuna, which run their own schedule, are refused
  under torchrun before anything is written.

Tiny data (8x8 images, the small stem) keeps each process start the main cost.
"""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_in_process, run_ranks, write_medmnist_npz
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.data import DistributedSampler

from pathmnist.augment.transforms import build_transforms, channel_stats
from pathmnist.config import TrainConfig
from pathmnist.data import dataset as data
from pathmnist.data.loader import BatchLoader
from pathmnist.errors import PathMNISTError
from pathmnist.files import SLOW_WRITE_ENV
from pathmnist.model import syncbn
from pathmnist.model.registry import build
from pathmnist.studies import ablation, folder, grid
from pathmnist.training import ddp, loop


@given(n=st.integers(1, 40), world=st.integers(1, 5), data_=st.data())
def test_shard_is_distributed_samplers_split(n, world, data_):
    rank = data_.draw(st.integers(0, world - 1))
    indices = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    mine, real = ddp.shard(indices, rank, world)
    sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=False)
    assert mine.tolist() == [indices[i].item() for i in sampler]
    # Padding: the entries past the end of the list, wrapped round to its start.
    assert real.tolist() == [rank + k * world < n for k in range(len(mine))]


@given(n=st.integers(1, 40), world=st.integers(1, 5))
def test_shard_rows_cover_each_batch_once_with_weights_averaging_to_one(n, world):
    parts = [ddp.Shard(r, world)(n, "cpu") for r in range(world)]
    rows = torch.cat([p[0] for p in parts])
    assert sorted(rows.tolist()) == list(range(n))  # Every row once, padding dropped.
    # DDP averages over ranks: sum_r scale_r * mean_r / world is the global mean.
    assert sum(scale for _, scale in parts) == pytest.approx(world)
    for part, scale in parts:
        assert scale == pytest.approx(len(part) * world / n)


def test_batch_that_does_not_split_is_refused(monkeypatch):
    monkeypatch.setattr(ddp, "world_size", lambda: 3)
    ddp.check_batch(12)
    with pytest.raises(PathMNISTError, match="multiple of 3"):
        ddp.check_batch(16)


def test_resume_on_another_world_size_is_refused():
    ddp.check_resume(None, "runs/x")
    ddp.check_resume({"rows": []}, "runs/x")  # No world_size: one process, as this one.
    with pytest.raises(PathMNISTError, match="--nproc-per-node 2"):
        ddp.check_resume({"world_size": 2}, "runs/x")


# A few steps: 35 images in global batches of 12 (12, 12, 11: the last splits 6 + 5).
N_IMAGES, BATCH = 35, 12


def _setup(npz):
    train = data.load_split("train", data_file=npz)
    mean, std = channel_stats(train)
    train_tf, _ = build_transforms(mean, std, ("flips",), 8, None)
    torch.manual_seed(0)
    model = build("resnet18", num_classes=9, stem="small")
    optimizer_args = {"lr": 0.005, "momentum": 0.9, "weight_decay": 1e-4}
    return train, train_tf, model, optimizer_args


def _steps_worker(rank, world, npz, out):
    train, train_tf, model, args = _setup(npz)
    model = syncbn.convert_sync_batchnorm(model, "cpu")
    optimizer = torch.optim.SGD(model.parameters(), **args)
    replica = ddp.wrap(model, lambda m, x: loop.forward(m, x, "fp32"), torch.device("cpu"))
    loader = BatchLoader(train, BATCH, seed=3, transform=train_tf, shard=ddp.Shard(rank, world))
    numbers = []
    for epoch in (1, 2):
        loader.set_epoch(epoch)
        numbers.append(loop.train_one_epoch(model, loader, optimizer, replica=replica))
    if rank == 0:
        torch.save({"state": model.state_dict(), "numbers": numbers}, out)


def test_ddp_steps_equal_one_process(tmp_path):
    npz = write_medmnist_npz(tmp_path / "d.npz", sizes=(N_IMAGES, 9, 9), size=8)
    run_ranks(_steps_worker, 2, npz, tmp_path / "ddp.pt")
    got = torch.load(tmp_path / "ddp.pt")
    train, train_tf, model, args = _setup(npz)
    optimizer = torch.optim.SGD(model.parameters(), **args)
    loader = BatchLoader(train, BATCH, seed=3, transform=train_tf)
    numbers = []
    for epoch in (1, 2):
        loader.set_epoch(epoch)
        numbers.append(loop.train_one_epoch(model, loader, optimizer))
    for (loss, acc), (ref_loss, ref_acc) in zip(got["numbers"], numbers, strict=True):
        assert loss == pytest.approx(ref_loss, rel=1e-5)
        assert acc == ref_acc
    ref = model.state_dict()
    assert got["state"].keys() == ref.keys()
    for key, value in ref.items():
        torch.testing.assert_close(
            got["state"][key], value, rtol=1e-3, atol=1e-4, msg=lambda m, k=key: f"{k}: {m}"
        )
    # The run moved the weights: the comparison is not between two initial models.
    assert not torch.equal(ref["conv1.weight"], _setup(npz)[2].state_dict()["conv1.weight"])


# examples/01_baseline.py under torchrun: 3 epochs of 70 images at 8x8, global batch 16
# (the last batch of each epoch, 6 images, splits 3 + 3), SGD: Adam divides each step by
# the root of the gradient's second moment, so a weight whose gradient is near 0 (where
# rounding is relatively largest) takes a full step either way, and float32 noise grows
# by about 1e-4 of the loss per epoch (chapter 14); SGD keeps it at rounding size.
BASELINE = Path(__file__).resolve().parents[1] / "examples" / "01_baseline.py"
EPOCHS = 3
FLAGS = ["--stem", "small", "--batch-size", "16", "--optimizer", "sgd", "--lr", "0.0005"]
FLAGS += ["--device", "cpu"]
FLAGS += ["--precision", "fp32", "--quiet", "--epochs", str(EPOCHS)]


def _baseline(npz, out, procs=None, *extra, wait=True, env=None):
    """Start examples/01_baseline.py, under torchrun with `procs` processes if given."""
    launch = [sys.executable]
    if procs is not None:  # --standalone: a rendezvous on a free local port.
        launch += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}"]
    cmd = [*launch, str(BASELINE), "--data-file", str(npz), "--out", str(out), *FLAGS, *extra]
    env = {**os.environ, **(env or {})}
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if wait:
        stdout, stderr = p.communicate(timeout=300)
        return p.returncode, stdout, stderr
    return p


def _history(out):
    with open(out / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def _weights(out):
    return torch.load(out / "last.pt", weights_only=True)["model"]


def _learnable_npz(path):
    """70/20/9 images at 8x8, each class a colour plus noise: a task the net learns
    smoothly (random labels are memorised, a chaotic regime where float32 rounding
    grows from epoch to epoch)."""
    rng = np.random.default_rng(0)
    palette = rng.integers(40, 216, (9, 3))
    arrays = {}
    for split, n in (("train", 70), ("val", 20), ("test", 9)):
        labels = np.arange(n) % 9
        rng.shuffle(labels)
        images = palette[labels][:, None, None, :] + rng.normal(0, 25, (n, 8, 8, 3))
        arrays[f"{split}_images"] = images.clip(0, 255).astype(np.uint8)
        arrays[f"{split}_labels"] = labels.astype(np.uint8).reshape(n, 1)
    np.savez_compressed(path, **arrays)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process and 2 processes, the same seed and global batch."""
    tmp = tmp_path_factory.mktemp("torchrun")
    npz = _learnable_npz(tmp / "d.npz")
    for name, procs in (("one", None), ("two", 2)):
        rc, _, stderr = _baseline(npz, tmp / name, procs)
        assert rc == 0, stderr[-3000:]
    return tmp, npz


@pytest.mark.slow
def test_two_processes_write_the_history_of_one(runs):
    """Epoch 1 agrees to float32 rounding; later epochs drift as one process drifts from
    itself when its sums are added in another order (chapter 14: 1 vs 2 threads)."""
    tmp, _ = runs
    one, two = _history(tmp / "one"), _history(tmp / "two")
    assert len(one) == len(two) == EPOCHS
    for a, b in zip(one, two, strict=True):
        rel = 1e-4 if a["epoch"] == "1" else 5e-2
        for col in ("train_loss", "val_loss", "lr"):
            assert float(b[col]) == pytest.approx(float(a[col]), rel=rel), (a["epoch"], col)
        for col in ("epoch", "device", "precision") + (("train_acc", "val_acc") * (rel < 1e-3)):
            assert b[col] == a[col], col
    w1, w2 = _weights(tmp / "one"), _weights(tmp / "two")
    assert w1.keys() == w2.keys()  # BatchNorm2d's keys: a 2-process run loads anywhere.
    # All the weights as one vector (a BatchNorm bias near 0 alone is all rounding).
    flat1, flat2 = (torch.cat([w[k].double().flatten() for k in w1]) for w in (w1, w2))
    assert torch.dist(flat2, flat1) <= 5e-2 * flat1.norm()
    assert torch.load(tmp / "two" / "last.pt", weights_only=True)["world_size"] == 2
    assert not any((tmp / "two").glob("*rank*"))  # Only rank 0 wrote: one set of files.


def _worker_pids(launcher_pid):
    """The worker processes torchrun started, by rank (read from their environment)."""
    pids = {}
    for task in Path(f"/proc/{launcher_pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            ranks = [e[5:] for e in env if e.startswith(b"RANK=")]
            if ranks:
                pids[int(ranks[0])] = int(pid)
    return pids


@pytest.mark.slow
def test_a_killed_rank_ends_the_job_and_resume_ends_where_it_would_have(runs, tmp_path):
    tmp, npz = runs
    out = tmp_path / "killed"
    # Each checkpoint's temporary file lives 3 s: the job outlasts the checks below.
    job = _baseline(npz, out, 2, wait=False, env={SLOW_WRITE_ENV: "3"})
    deadline = time.monotonic() + 240
    while len(_history(out) if (out / "history.csv").exists() else []) < 1:
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()[1][-3000:]
        time.sleep(0.05)
    # A second job into the live run folder is refused, as for one process.
    rc, _, stderr = _baseline(npz, out, None, "--resume")
    assert rc == 2 and stderr.count("error:") == 1 and "another run is writing" in stderr
    killed_at = time.monotonic()
    os.kill(_worker_pids(job.pid)[1], signal.SIGKILL)
    _, stderr = job.communicate(timeout=120)
    assert time.monotonic() - killed_at < 60
    assert job.returncode != 0
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert lines == [f"error: {ddp.PEER_FAILED}"], stderr[-3000:]
    assert len(_history(out)) < EPOCHS  # It stopped mid-run.
    # Resuming with one process is refused; with 2 it ends as the uninterrupted run, bit
    # for bit.
    rc, _, stderr = _baseline(npz, out, None, "--resume")
    assert rc == 2 and "--nproc-per-node 2" in stderr, stderr[-3000:]
    rc, _, stderr = _baseline(npz, out, 2, "--resume")
    assert rc == 0, stderr[-3000:]
    seconds_aside = [{k: v for k, v in r.items() if k != "seconds"} for r in _history(out)]
    expected = [{k: v for k, v in r.items() if k != "seconds"} for r in _history(tmp / "two")]
    assert seconds_aside == expected
    got, ref = _weights(out), _weights(tmp / "two")
    assert all(torch.equal(got[k], ref[k]) for k in ref)


@pytest.mark.slow
def test_a_global_batch_that_does_not_split_is_refused(runs, tmp_path):
    _, npz = runs
    rc, _, stderr = _baseline(npz, tmp_path / "odd", 2, "--batch-size", "15")
    assert rc != 0, stderr[-3000:]  # torchrun's status is 1 when a rank fails (here with 2).
    assert [ln for ln in stderr.splitlines() if ln.startswith("error:")] == [
        "error: --batch-size 15 does not split evenly over 2 processes; pass a multiple of 2 "
        "(it is the global batch, shared by all processes)."
    ]
    assert not (tmp_path / "odd").exists() or not any((tmp_path / "odd").iterdir())


# Parallel trials: 3 trials of 1 epoch (rank 0 takes trials 0 and 2, rank 1 trial 1).
SPACE = {"lr": [1e-3, 3e-3, 1e-2]}
BASE = TrainConfig(stem="small", batch_size=16, epochs=1, device="cpu", precision="fp32")


def _grid_worker(rank, world, npz, out):
    splits = [data.load_split(s, data_file=npz) for s in ("train", "val")]
    grid.grid_search(SPACE, *splits, out, epochs=1, base=BASE, quiet=True)


def test_parallel_trials_write_the_results_of_one_process(tmp_path):
    npz = write_medmnist_npz(tmp_path / "d.npz", sizes=(40, 12, 9), size=8)
    run_ranks(_grid_worker, 2, npz, tmp_path / "two")
    splits = [data.load_split(s, data_file=npz) for s in ("train", "val")]
    table = grid.grid_search(SPACE, *splits, tmp_path / "one", epochs=1, base=BASE, quiet=True)
    one = folder.read_results(tmp_path / "one" / "results.csv")
    two = folder.read_results(tmp_path / "two" / "results.csv")
    assert [r["params"] for r in two] == [{"lr": lr} for lr in SPACE["lr"]]  # Trial order.
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in two] == [
        {k: v for k, v in r.items() if k not in drop} for r in one
    ]
    summary = [{k: v for k, v in s.items() if k != "seconds"} for s in grid.summarize(two)]
    assert summary == [{k: v for k, v in s.items() if k != "seconds"} for s in table]
    _same_run_files(tmp_path / "one", tmp_path / "two")


def _same_run_files(one, two):
    """Every training folder of the 2-process study holds the files one process wrote
    (whichever rank trained it), the same history seconds aside."""
    runs = sorted(p.parent.relative_to(one) for p in one.rglob("history.csv"))
    assert runs and runs == sorted(p.parent.relative_to(two) for p in two.rglob("history.csv"))
    for run in runs:
        assert (two / run / "config.json").is_file()
        drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
        assert drop(_history(two / run)) == drop(_history(one / run))


RECIPES = {"baseline": {}, "flips": {"augment": ("flips",)}}


def _ablation_data(npz):
    shifts = {"stain": {s: data.load_split(s, data_file=npz) for s in ("train", "val", "test")}}
    shifts["scanner"] = {**shifts["stain"], "test": shifts["stain"]["val"]}  # Same training.
    return shifts


def _ablation_worker(rank, world, npz, out):
    ablation.run_study(_ablation_data(npz), RECIPES, [0, 1], BASE, out, quiet=True)


def test_parallel_ablation_writes_the_rows_of_one_process(tmp_path):
    npz = write_medmnist_npz(tmp_path / "d.npz", sizes=(40, 12, 9), size=8)
    run_ranks(_ablation_worker, 2, npz, tmp_path / "two")
    ablation.run_study(_ablation_data(npz), RECIPES, [0, 1], BASE, tmp_path / "one", quiet=True)
    one, two = (ablation.read_rows(tmp_path / n / "results.csv") for n in ("one", "two"))
    assert len(two) == 8  # 2 recipes x 2 seeds, each tested on both shifts.
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert drop(two) == drop(one)
    assert (tmp_path / "two" / "study.json").read_bytes() == (
        tmp_path / "one" / "study.json"
    ).read_bytes()
    _same_run_files(tmp_path / "one", tmp_path / "two")


def test_optuna_under_torchrun_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    """Optuna starts its own workers on a shared storage: under torchrun it is refused in one
    sentence, before the data or the run folder."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    args = ["--dataset", "synthetic", "--strategy", "optuna", "--out", tmp_path / "o"]
    code, err = run_in_process("02_tuning.py", args, capsys)
    assert code == 2 and err.count("\n") == 1 and "run it without torchrun" in err
    assert not (tmp_path / "o").exists()


def test_halving_under_torchrun_is_refused(tmp_path, monkeypatch):
    """Successive halving decides each round from the last: one process only."""
    from pathmnist.studies import halving

    monkeypatch.setattr(ddp, "world_size", lambda: 2)
    npz = write_medmnist_npz(tmp_path / "d.npz", sizes=(18, 9, 9), size=8)
    splits = [data.load_split(s, data_file=npz) for s in ("train", "val")]
    with pytest.raises(PathMNISTError, match="without torchrun"):
        halving.halving_search(SPACE, *splits, tmp_path / "h", base=BASE, quiet=True)
    assert not (tmp_path / "h").exists()
