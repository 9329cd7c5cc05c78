"""pathmnist.data.loader.BatchLoader: an epoch is the (seed, epoch)-seeded permutation sliced
into batches (every index exactly once, or the first floor(n / b) * b with drop_last), the
transform draws from the same generator right after the permutation, the CPU path shares
the split's memory, and bad arguments (batch_size=True included) are named errors. On a
CUDA GPU, both the device-resident and the pinned host path give the CPU's batches."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from strategies import epochs, loader_batch_sizes, loader_sizes, seeds

from pathmnist.data.dataset import ImageSet
from pathmnist.data.loader import BatchLoader
from pathmnist.errors import PathMNISTError


def tagged_set(n, side=2):
    """n images whose pixel (0, 0, 0) and label both equal the image's index (mod 256)."""
    images = np.zeros((n, side, side, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(n) % 256
    return ImageSet(images, np.arange(n), tuple(f"c{i}" for i in range(n)))  # A class each.


def expected_order(n, seed, epoch):
    """The permutation the docs promise: torch.randperm from seed * 1_000_003 + epoch."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def labels_of(loader):
    batches = [y for _, y in loader]
    return torch.cat(batches) if batches else torch.zeros(0, dtype=torch.int64)


@settings(deadline=None, max_examples=100)
@given(n=loader_sizes, b=loader_batch_sizes, drop_last=st.booleans(), seed=seeds, epoch=epochs)
@example(n=1, b=17, drop_last=True, seed=0, epoch=0)  # No batch at all.
@example(n=17, b=17, drop_last=True, seed=0, epoch=0)  # Exactly one full batch.
@example(n=18, b=17, drop_last=False, seed=0, epoch=0)  # A last batch of one.
def test_every_index_once_per_epoch(n, b, drop_last, seed, epoch):
    """An epoch is the seeded permutation sliced into batches: every index exactly once
    (with drop_last, exactly the first floor(n / b) * b of it); images travel with labels."""
    loader = BatchLoader(tagged_set(n), b, seed=seed, drop_last=drop_last)
    loader.set_epoch(epoch)
    batches = list(loader)
    assert len(batches) == len(loader) == (n // b if drop_last else -(-n // b))
    for x, y in batches:
        assert x.dtype == torch.uint8 and x.shape[1:] == (2, 2, 3) and y.dtype == torch.int64
        assert 1 <= len(y) <= b and torch.equal(x[:, 0, 0, 0].long(), y)
    order = expected_order(n, seed, epoch)
    assert torch.equal(labels_of(loader), order[: (n // b) * b] if drop_last else order)
    if not drop_last:
        assert sorted(labels_of(loader).tolist()) == list(range(n))
    assert loader.num_samples == n


@settings(deadline=None, max_examples=40)
@given(n=st.integers(10, 60), b=loader_batch_sizes, seed=seeds, epoch=epochs)
def test_order_depends_on_seed_and_epoch_only(n, b, seed, epoch):
    """Same (seed, epoch), same order, also on a second pass and in a second loader;
    the next epoch and the next seed reorder."""
    loader = BatchLoader(tagged_set(n), b, seed=seed)
    loader.set_epoch(epoch)
    first = labels_of(loader)
    assert torch.equal(first, labels_of(loader))  # Iterating does not advance the epoch.
    twin = BatchLoader(tagged_set(n), b, seed=seed)
    twin.set_epoch(epoch)
    assert torch.equal(first, labels_of(twin))
    loader.set_epoch(epoch + 1)
    assert not torch.equal(first, labels_of(loader))
    other = BatchLoader(tagged_set(n), b, seed=seed + 1)
    other.set_epoch(epoch)
    assert not torch.equal(first, labels_of(other))


def test_no_shuffle_is_in_order():
    """shuffle=False yields 0, 1, ..., n-1 in every epoch."""
    loader = BatchLoader(tagged_set(10), 3, shuffle=False)
    loader.set_epoch(5)
    assert labels_of(loader).tolist() == list(range(10))


def test_transform_draws_from_the_epoch_generator():
    """The transform gets `loader.generator`, seeded for the epoch and advanced by the
    permutation only, so (seed, epoch) fixes the augmentation too."""
    seen = []

    def noisy(x, generator):
        seen.append(generator)
        return torch.rand(len(x), generator=generator)

    def run(seed, epoch):
        loader = BatchLoader(tagged_set(20), 8, seed=seed, transform=noisy)
        loader.set_epoch(epoch)
        return loader, [x for x, _ in loader]

    g = torch.Generator().manual_seed(3 * 1_000_003 + 2)
    torch.randperm(20, generator=g)
    loader, draws = run(3, 2)
    assert all(s is loader.generator for s in seen)
    assert torch.equal(draws[0], torch.rand(8, generator=g))
    assert all(torch.equal(a, b) for a, b in zip(draws, run(3, 2)[1], strict=True))
    assert not torch.equal(draws[0], run(3, 1)[1][0])


def test_cpu_split_is_the_imagesets_memory():
    """On the CPU the loader's tensor is the ImageSet's memory (no copy, no float copy),
    even with keep_on_device=False; a read-only array loads without a warning."""
    s = tagged_set(12)
    for keep in (None, True, False):
        loader = BatchLoader(s, 4, keep_on_device=keep)
        assert loader.on_device and loader.images.dtype == torch.uint8
        assert loader.images.data_ptr() == s.images.ctypes.data
    s.images.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BatchLoader(s, 4)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"batch_size": 0}, "batch_size=0 is not allowed; use a whole number >= 1"),
        ({"batch_size": -1}, "batch_size=-1"),
        ({"batch_size": 2.5}, "batch_size=2.5"),
        ({"batch_size": "8"}, "batch_size='8'"),
        ({"batch_size": None}, "batch_size=None"),
        ({"batch_size": True}, "batch_size=True"),  # Not batch 1.
        ({"shuffle": 1}, "shuffle=1 is not allowed; use True or False"),
        ({"drop_last": "no"}, "drop_last='no'"),
        ({"seed": -1}, "seed=-1"),
        ({"seed": 1.5}, "seed=1.5"),
    ],
)
def test_bad_arguments_are_named(kwargs, words):
    """A batch size, flag or seed of the wrong kind is a PathMNISTError naming it."""
    kwargs = {"batch_size": 4, **kwargs}
    with pytest.raises(PathMNISTError, match=words):
        BatchLoader(tagged_set(4), **kwargs)


# On a CUDA GPU.


@pytest.mark.parametrize("keep_on_device", [True, False], ids=["resident", "pinned"])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_batches_equal_the_cpus(keep_on_device, drop_last):
    """Resident on the GPU or gathered in pinned host memory and copied, the batches live
    on the GPU and equal the CPU's, epoch after epoch (the pinned buffer is reused, the
    last batch is short)."""
    s = tagged_set(30, side=4)

    def f(x, g):  # A transform that draws: the draws must match too.
        return x.float() + torch.rand(len(x), 1, 1, 1, generator=g).to(x.device)

    cpu = BatchLoader(s, 7, seed=4, transform=f, drop_last=drop_last)
    gpu = BatchLoader(s, 7, seed=4, transform=f, device="cuda", drop_last=drop_last,
                      keep_on_device=keep_on_device)  # fmt: skip
    assert gpu.on_device is keep_on_device
    assert gpu.images.is_cuda is keep_on_device
    for epoch in (1, 2):
        cpu.set_epoch(epoch)
        gpu.set_epoch(epoch)
        batches = list(zip(cpu, gpu, strict=True))
        assert len(batches) == len(cpu)
        for (xc, yc), (xg, yg) in batches:
            assert xg.is_cuda and yg.is_cuda
            assert torch.equal(xc, xg.cpu()) and torch.equal(yc, yg.cpu())
    if not keep_on_device:
        assert gpu._pinned[0].is_pinned() and len(gpu._pinned[0]) == 7


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_auto_placement_keeps_a_small_split_on_the_gpu():
    """With keep_on_device left to the loader, a tiny split fits and lives on the GPU."""
    loader = BatchLoader(tagged_set(8), 4, device="cuda")
    assert loader.on_device and loader.images.is_cuda and loader.labels.is_cuda


def test_fits_on_device_counts_memory_pytorch_has_cached(monkeypatch):
    """Free GPU memory is the driver's free memory plus what PyTorch's allocator holds
    unused (reserved - allocated): a split that fits only with that cache counted fits.
    The CUDA queries are replaced by fakes, so no GPU is needed."""
    from pathmnist.data import loader as L

    gib = 1 << 30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1 * gib, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 10 * gib)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 4 * gib)
    cuda = torch.device("cuda")
    # 1 GiB free + 6 GiB cached = 7 GiB, less the 2 GiB headroom: 5 GiB fit, 5 GiB + 1 not.
    assert L.fits_on_device(7 * gib - L.HEADROOM, cuda)
    assert not L.fits_on_device(7 * gib - L.HEADROOM + 1, cuda)
    assert L.fits_on_device(10**15, torch.device("cpu"))
