"""Shared fixtures: tiny MedMNIST-format npz files built in a tmp dir, and the
hypothesis profiles (a derandomized one for CI)."""

import os

# One thread per process: the tests use tiny tensors, where torch's thread pool costs more
# than it saves (and several test processes share 2 cores). Set before torch starts, so
# subprocesses (examples, fault injection) inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

torch.set_num_threads(1)

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def write_medmnist_npz(path, sizes=(30, 10, 10), size=8, num_classes=9, seed=0, channels=3):
    """Write a random npz in the MedMNIST format: `{split}_images` uint8 (N, H, W, 3)
    (or (N, H, W) when channels is 1) and `{split}_labels` uint8 (N, 1).

    Every class appears in every split whenever the split has at least num_classes
    images, so AUC is defined on it.
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in zip(("train", "val", "test"), sizes, strict=True):
        shape = (n, size, size) if channels == 1 else (n, size, size, 3)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        labels = np.arange(n) % num_classes
        rng.shuffle(labels)
        arrays[f"{split}_labels"] = labels.astype(np.uint8).reshape(n, 1)
    np.savez_compressed(path, **arrays)
    return path


@pytest.fixture
def tiny_npz(tmp_path):
    """A 30/10/10-image, 8x8, 9-class random npz in the MedMNIST format."""
    return write_medmnist_npz(tmp_path / "tiny.npz")


def free_port() -> int:
    """A TCP port that was free a moment ago, for a process group's rendezvous."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank, world, port, fn, args):
    import torch.distributed as dist

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world)
    )
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    try:
        fn(rank, world, *args)
    finally:
        dist.destroy_process_group()


def run_ranks(fn, world, *args):
    """Run `fn(rank, world, *args)` in `world` fresh processes joined by a gloo group (the
    environment torchrun would give them); `fn` must be a module-level function."""
    import torch.multiprocessing as mp

    mp.spawn(_rank_main, (world, free_port(), fn, args), nprocs=world)
