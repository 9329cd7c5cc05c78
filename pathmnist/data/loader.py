"""BatchLoader: batches of one split with no per-sample Python and no worker processes.

The split stays uint8 (N, H, W, 3), a quarter of a float32 copy. On a GPU it lives in GPU
memory when it fits (`torch.cuda.mem_get_info`, leaving HEADROOM for the model, its
activations and the optimizer), so a batch is one `index_select` on the device; otherwise
it stays in host memory and each batch is gathered into pinned (page-locked) memory and
copied with `non_blocking=True`. That copy is queued on the current CUDA stream, behind the
previous batch's kernels, so the copy itself does not overlap compute (that would take a
side stream); what overlaps is the host's work: the Python loop returns at once and gathers
the next batch while the GPU still computes. On the CPU the split is used where it lies
(a memory-mapped file too).

Each epoch draws a permutation from a CPU generator seeded with seed * 1_000_003 + epoch,
slices it into batches and hands each batch and the same generator to `transform`, so
(seed, epoch) fixes order and augmentation on any device. The training loop calls
set_epoch(e); iterating does not advance the epoch.

Tested in tests/test_loader.py (every index once per epoch, order fixed by (seed, epoch),
drop_last, the pinned-memory path forced on, bad arguments); the `shard` hook of data-parallel
training in tests/test_ddp.py.
"""

import warnings

import torch

from pathmnist import checks
from pathmnist.device import decisions_to

# Bytes of GPU memory left free for everything but the split: ResNet-18's weights, Adam's
# two moments, gradients (4 x 45 MB) and a batch's activations fit in well under 2 GiB.
HEADROOM = 2 << 30


def fits_on_device(nbytes: int, device: torch.device) -> bool:
    """True when `nbytes` more fit in the GPU's free memory with HEADROOM to spare. Free
    memory counts what the driver has free plus what PyTorch's caching allocator holds
    but does not use (reserved - allocated), which it hands out again before asking the
    driver: after an earlier run in the same process, that cache can be most of the GPU."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return nbytes + HEADROOM <= free + cached


class BatchLoader:
    """Iterate (x, y) batches of an ImageSet: x as `transform` makes it, y int64 (B,)."""

    def __init__(
        self,
        imageset,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        transform=None,
        device="cpu",
        drop_last: bool = False,
        keep_on_device: bool | None = None,
        shard=None,
    ):
        self.batch_size = checks.whole(batch_size, "batch_size", 1)
        self.shuffle = checks.flag(shuffle, "shuffle")
        self.drop_last = checks.flag(drop_last, "drop_last")
        self.seed = checks.whole(seed, "seed", 0)
        self.transform, self.epoch = transform, 0
        self.device = torch.device(device)
        self.num_samples = len(imageset)
        self.generator = torch.Generator()
        with warnings.catch_warnings():  # A read-only array is fine: we only ever read it.
            warnings.filterwarnings("ignore", "The given NumPy array is not writable")
            images = torch.from_numpy(imageset.images)  # (N, H, W, 3) uint8, no copy
        if keep_on_device is None:
            keep_on_device = fits_on_device(images.nbytes, self.device)
        self.on_device = keep_on_device or self.device.type == "cpu"
        self.images = images.to(self.device) if self.on_device else images
        labels = torch.from_numpy(imageset.labels).to(torch.int64)  # (N,)
        self.labels = labels.to(self.device) if self.on_device else labels
        self._pinned = None  # Two pinned (images, labels, event) buffers for the host path.
        # Data-parallel training (training.ddp.Shard): each batch is the global batch, made
        # and augmented in full, of which this rank keeps its rows; `loss_scale` is then
        # the weight of this rank's mean loss in the global batch's (1 for one process).
        self.shard, self.loss_scale = shard, 1.0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose permutation (and augmentation draws) the next pass uses."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def _host_batch(self, idx):
        """Gather a batch into pinned memory and start its copy to the GPU.

        Two pinned buffers take turns, each with a CUDA event recorded after its copy: the
        gather of batch i+1 waits only until batch i-1's copy out of the same buffer has
        ended. The copies run on the current stream, in order with the compute, so the
        host's gather overlaps the GPU's work, not the copy itself."""
        n = len(idx)
        if self._pinned is None:
            shape = (self.batch_size, *self.images.shape[1:])
            self._pinned = [
                (
                    torch.empty(shape, dtype=torch.uint8).pin_memory(),
                    torch.empty(self.batch_size, dtype=torch.int64).pin_memory(),
                    torch.cuda.Event(),
                )
                for _ in range(2)
            ]
            self._turn = 0
        images, labels, copied = self._pinned[self._turn]
        self._turn ^= 1
        copied.synchronize()  # This buffer's previous copy has left it (no-op the first time).
        x, y = images[:n], labels[:n]
        torch.index_select(self.images, 0, idx, out=x)
        torch.index_select(self.labels, 0, idx, out=y)
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        copied.record()
        return x, y

    def __iter__(self):
        n, b = self.num_samples, self.batch_size
        self.generator.manual_seed(self.seed * 1_000_003 + self.epoch)
        generator = self.generator
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        if self.on_device:  # From pinned memory, non_blocking: no wait for the GPU.
            order = decisions_to(order, self.device)
        for start in range(0, len(self) * b, b):
            idx = order[start : start + b]
            if self.on_device:
                x = self.images.index_select(0, idx)  # (B, H, W, 3) uint8
                y = self.labels.index_select(0, idx)  # (B,) int64
            else:
                x, y = self._host_batch(idx)
            x = x if self.transform is None else self.transform(x, generator)
            if self.shard is not None:
                rows, self.loss_scale = self.shard(len(y), y.device)
                x, y = x[rows], y[rows]
            yield x, y
