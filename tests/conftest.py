"""Shared fixtures: tiny MedMNIST-format npz files built in a tmp dir, a throwaway
PostgreSQL server (marked tests: `postgres`), and the hypothesis profiles (a derandomized
one for CI)."""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

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
    """A local TCP port nothing listens on now (the OS picks it): a PostgreSQL server's,
    a process group's rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server in a temporary folder on a free local port, as an
    SQLAlchemy URL; stopped and removed afterwards. initdb refuses to run as root, so as
    root the server runs as the `postgres` user."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on PATH")
    as_user = []
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run initdb as")
        as_user = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="pathmnist-pg-"))  # Not under pytest's 0700 folders.
    data, port = root / "data", free_port()
    if as_user:
        shutil.chown(root, "postgres")

    def run(*cmd):
        subprocess.run([*as_user, *cmd], check=True, capture_output=True)

    try:
        run(initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        # -k: the unix socket in our folder; -F: no fsync (a throwaway database).
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -F"
        run(pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                           capture_output=True)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def tiny(monkeypatch):
    """Build test_fit's tiny net wherever a config says resnet18 (fit, load_checkpoint,
    the searches), in this process only: a worker process builds the real one."""
    from test_fit import TinyNet

    from pathmnist.model import registry

    monkeypatch.setitem(registry.BUILDERS, "resnet18", TinyNet)


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


def run_in_process(name, args, capsys) -> tuple[int, str]:
    """Run examples/<name>'s main(args) as its script does (through cli.run, which turns a
    user error into one line and status 2), in this process; (exit status, stderr)."""
    import importlib.util

    from pathmnist import cli

    path = Path(__file__).resolve().parents[1] / "examples" / name
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    capsys.readouterr()
    try:
        cli.run(lambda: module.main([str(a) for a in args]))
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err
