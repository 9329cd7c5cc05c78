"""Data-parallel training with `torchrun` and DistributedDataParallel, equal to one process.

`torchrun --nproc-per-node N examples/01_baseline.py ...` starts N copies of the script
(ranks 0..N-1) with RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT in their environment;
`setup` joins them into one process group (gloo on the CPU, NCCL on CUDA; env:// reads
those variables), with a TIMEOUT so that a peer that hangs ends the job instead of
blocking it. A plain `python` run has no WORLD_SIZE and stays one process.

What makes N ranks compute what one process computes with the same global batch B:

- `Shard`: each rank takes its share of every global batch of the epoch's seeded
  permutation, the way `torch.utils.data.DistributedSampler` splits a list (`shard`:
  padded by wrapping to a multiple of N, then every N-th entry from the rank's own). The
  padding makes every rank run the same number of steps; padded rows are dropped before
  the forward, so none enters BatchNorm's statistics, the loss or a metric. Augmentation is
  drawn for the whole global batch on every rank (the same generator, the same draws as
  one process) before a rank keeps its rows.
- Loss weights: DDP averages gradients over ranks, which equals the gradient of the global
  mean loss only when shards are equal. A shard of b of the batch's G images scales its
  mean loss by b * N / G, so the average over ranks is the global mean for any b.
- `model.syncbn.convert_sync_batchnorm`: BatchNorm statistics over the global batch, not
  each shard (torch.nn.SyncBatchNorm on CUDA; on the CPU, where torch's refuses, the sums
  all-reduced by `model.syncbn.SyncBatchNorm`).
- `evaluate`: each rank evaluates its DistributedSampler shard of the split; the shards
  are all-gathered, put back in order and the padding dropped, so every rank holds the
  metrics of the whole split, each image counted once, and takes the same early-stopping
  decision.

Tested in tests/test_ddp.py: `shard` against DistributedSampler; a few DDP steps with
an uneven last batch, and a whole torchrun run of examples/01_baseline.py, against one
process; a rank killed by SIGKILL; parallel trials against one process.
"""

import contextlib
import datetime
import os
import signal
import sys
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from pathmnist.data.dataset import ImageSet
from pathmnist.data.loader import BatchLoader
from pathmnist.device import resolve_device
from pathmnist.errors import PathMNISTError
from pathmnist.evaluation import metrics
from pathmnist.training import loop, rundir

# How long a collective waits for a peer that neither answers nor dies. A killed peer is
# noticed at once (its sockets close; torchrun stops the others); this bounds the rest:
# rank 0 alone prepares the run (channel statistics, Macenko's fit) while the others wait.
TIMEOUT = datetime.timedelta(minutes=10)
PEER_FAILED = (
    "another process of this torchrun job stopped, so the whole job stops; rerun the same "
    "command with --resume to continue from the last checkpoint."
)


def launched() -> bool:
    """True in a process that torchrun started with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank() -> int:
    """This process's rank (0 in a plain run; RANK before the group is joined)."""
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """The number of processes in the group (1 in a plain run)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """Rank 0: the one process that writes files and prints."""
    return rank() == 0


def setup(device="auto") -> None:
    """Join torchrun's process group: NCCL when `device` resolves to CUDA (one GPU per
    rank, LOCAL_RANK's), gloo otherwise. Does nothing in a plain run or when joined."""
    if not launched() or dist.is_initialized():
        return
    if resolve_device(device).type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend, timeout=TIMEOUT)
    # torchrun sends SIGTERM to the survivors when one rank dies: one line, not a traceback.
    signal.signal(signal.SIGTERM, lambda *_: stop())


def stop():
    """End this rank at once, with PEER_FAILED said once."""
    report_peer_failure()
    os._exit(1)  # Not SystemExit: a collective may be blocking in C++.


_reported = []


def report_peer_failure() -> None:
    """Print PEER_FAILED once per process, however many ways the failure shows up."""
    if not _reported:
        _reported.append(True)
        print(f"error: {PEER_FAILED}", file=sys.stderr, flush=True)


def is_peer_failure(error: BaseException) -> bool:
    """True for the error a collective raises when a peer died or timed out."""
    return world_size() > 1 and isinstance(error, dist.DistError)


def teardown() -> None:
    """Leave the process group (a no-op in a plain run)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def check_batch(batch_size: int) -> None:
    """The global batch must split evenly over the ranks."""
    n = world_size()
    if batch_size % n:
        raise PathMNISTError(
            f"--batch-size {batch_size} does not split evenly over {n} processes; pass a "
            f"multiple of {n} (it is the global batch, shared by all processes)."
        )


def check_resume(saved, out_dir) -> None:
    """A run resumes only on the world size it was trained with (its steps, its shards)."""
    if saved is None:
        return
    old, new = saved.get("world_size", 1), world_size()
    if old != new:
        raise PathMNISTError(
            f"cannot resume {out_dir}: it was trained by {old} process(es) and this job has "
            f"{new}; rerun it with torchrun --nproc-per-node {old} (or without torchrun for 1)."
        )


def shard(indices: torch.Tensor, rank: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    """DistributedSampler's share of `indices` for `rank` of `world` (shuffle=False):
    padded by wrapping to a multiple of `world`, then every world-th from position `rank`.
    Returns (this rank's ceil(n / world) entries, a bool mask of those that are not padding)."""
    n = len(indices)
    total = -(-n // world) * world
    positions = torch.arange(rank, total, world)
    return indices[positions % n], positions < n


@dataclass(frozen=True)
class Shard:
    """One rank's rows of each global batch, for `BatchLoader(shard=...)`."""

    rank: int
    world: int

    def __call__(self, n: int, device) -> tuple[torch.Tensor, float]:
        """(rows of a global batch of n this rank keeps, padding dropped; its loss weight
        b * world / n, so that DDP's mean over ranks is the global batch's mean)."""
        rows, real = shard(torch.arange(n), self.rank, self.world)
        rows = rows[real]
        return rows.to(device), len(rows) * self.world / n


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the body first (a download, a synthetic file made once), then the
    others, so no two processes build the same file at once."""
    if is_main():
        try:
            yield
        finally:
            if dist.is_initialized():
                dist.barrier()  # Also on an error: the others then meet it themselves.
    else:
        dist.barrier()
        yield


def from_main(fn, others=None):
    """Run `fn` on rank 0 only; its PathMNISTError is raised on every rank. The others
    return `others()` when given, else rank 0's result (broadcast)."""
    if world_size() == 1:
        return fn()
    result, error = None, None
    if is_main():
        try:
            result = fn()
        except PathMNISTError as e:
            error = str(e)
    box = [(error, result if others is None else None)]
    dist.broadcast_object_list(box, src=0)
    error, shared = box[0]
    if error is not None:
        raise PathMNISTError(error)
    if is_main():
        return result
    return others() if others is not None else shared


@contextlib.contextmanager
def hold(out, kind: str, resume: bool = False, overwrite: bool = False):
    """`rundir.hold` for an example's whole run, taken by rank 0 alone (the others write
    nothing); its refusal reaches every rank as the same PathMNISTError."""
    if world_size() == 1:
        with rundir.hold(out, kind, resume, overwrite) as held:
            yield held
        return
    with contextlib.ExitStack() as stack:
        # The others get a placeholder: the hold, and the folder with it, are rank 0's.
        from_main(lambda: stack.enter_context(rundir.hold(out, kind, resume, overwrite)), list)
        yield out


def map_jobs(work, jobs, record=None) -> list:
    """`[work(j) for j in jobs]` with job i run on rank i % N, each in one process; after
    every round of N jobs the results are gathered in job order, and rank 0 passes each
    to `record` (one process: after every job, as a plain loop)."""
    n, r, out = world_size(), rank(), []
    for start in range(0, len(jobs), n):
        chunk = jobs[start : start + n]
        mine = work(chunk[r]) if r < len(chunk) else None
        results = [mine]
        if n > 1:
            results = [None] * n
            dist.all_gather_object(results, mine)
        for result in results[: len(chunk)]:
            out.append(result)
            if record is not None and is_main():
                record(result)
    return out


class _Logits(torch.nn.Module):
    """The model behind `loop.forward`: DDP must run the forward to average gradients."""

    def __init__(self, model, forward):
        super().__init__()
        self.model, self._forward = model, forward

    def forward(self, x):
        return self._forward(self.model, x)


def wrap(model, forward, device):
    """`DistributedDataParallel` around `forward(model, x) -> logits` (rank 0's weights are
    broadcast to all at construction)."""
    # A 1x1 convolution's weight gradient can come back with other (equivalent) strides than
    # the weight's; DDP then copies it into its bucket and warns each rank once: harmless.
    warnings.filterwarnings("ignore", "Grad strides do not match bucket view strides")
    ids = None  # The CPU: no device ids.
    if device.type == "cuda":
        ids = [device.index if device.index is not None else torch.cuda.current_device()]
    return torch.nn.parallel.DistributedDataParallel(_Logits(model, forward), device_ids=ids)


def evaluate(model, imageset, transform, device, precision, tta=False, features=None, timers=None):
    """`loop.evaluate` over the whole split with each rank taking its DistributedSampler
    shard; every rank returns the whole split's Evaluation, in order, each image once."""
    n, w = len(imageset), world_size()
    mine, _ = shard(torch.arange(n), rank(), w)  # ceil(n / w) indices; the last may repeat
    part = ImageSet(imageset.images[mine.numpy()], imageset.labels[mine], imageset.class_names)
    loader = BatchLoader(part, loop.EVAL_BATCH_SIZE, False, transform=transform, device=device)
    with warnings.catch_warnings():  # A shard's own AUC may be undefined; it is not used.
        warnings.simplefilter("ignore", RuntimeWarning)
        ev = loop.evaluate(model, loader, precision, tta=tta, features=features, timers=timers)
    local = torch.from_numpy(
        np.concatenate([ev.logits, ev.probs, ev.labels[:, None].astype(np.float32)], axis=1)
    )  # (ceil(n / w), 2C + 1): labels are small integers, exact in float32
    comm = device if dist.get_backend() == "nccl" else torch.device("cpu")
    parts = [torch.empty_like(local, device=comm) for _ in range(w)]
    dist.all_gather(parts, local.to(comm))
    # Rank r's i-th row is image i * w + r: stack and interleave, then drop the padding.
    full = torch.stack(parts, 1).reshape(-1, local.shape[1])[:n].cpu()
    c = ev.probs.shape[1]
    z, p, y = full[:, :c], full[:, c : 2 * c], full[:, 2 * c].long()
    if not torch.isfinite(p).all():
        nan = float("nan")
        return loop.Evaluation(nan, nan, nan, p.numpy(), y.numpy(), z.numpy())
    loss = float(F.cross_entropy(z.double(), y))  # The mean NLL, as one process's
    p, y = p.numpy(), y.numpy()
    return loop.Evaluation(loss, metrics.accuracy(y, p), metrics.macro_auc(y, p), p, y, z.numpy())
