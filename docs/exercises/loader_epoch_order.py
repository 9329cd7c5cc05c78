"""Exercise for chapter 1 (the data): the batch loader's epoch.

Write `iterate(self)`, the body of `pathmnist.data.loader.BatchLoader.__iter__`: a generator
of (x, y) batches for the epoch chosen by `set_epoch`:

1. seed the loader's own CPU generator, `self.generator`, with
   `self.seed * 1_000_003 + self.epoch`, so (seed, epoch) alone fixes the order;
2. the epoch's order: `torch.randperm(n, generator=self.generator)` when `self.shuffle`,
   else `torch.arange(n)` (n = `self.num_samples`); move it to `self.device` when the
   split lives there (`self.on_device`);
3. slice the order into `len(self)` batches of `self.batch_size` indices (`len` already
   knows about `drop_last`); a batch is `self.images.index_select(0, idx)` and
   `self.labels.index_select(0, idx)` when `self.on_device`, else
   `self._host_batch(idx)` (the pinned-memory copy to the GPU, written for you);
4. yield `(self.transform(x, self.generator), y)`, or `(x, y)` when there is no
   transform: the transform draws its augmentation from the same generator, after the
   permutation.

Iterating must not change `self.epoch`: the training loop calls set_epoch each epoch.

The oracle (tests/test_loader.py): every index exactly once per epoch, in the order of
torch.randperm from the documented seed, drop_last, shuffle=False in order, the same
augmentation for the same (seed, epoch):

    python -m pathmnist.exercises check docs/exercises/loader_epoch_order.py

Hint. `range(0, len(self) * b, b)` gives each batch's first index.
"""

import torch  # noqa: F401 - yours will need it.

REPLACES = {"pathmnist.data.loader.BatchLoader.__iter__": "iterate"}
ORACLE_TESTS = (
    "test_every_index_once_per_epoch",
    "test_order_depends_on_seed_and_epoch_only",
    "test_no_shuffle_is_in_order",
    "test_transform_draws_from_the_epoch_generator",
)


def iterate(self):
    """Yield the (x, y) batches of epoch `self.epoch`: x as the transform makes it (uint8
    (B, H, W, 3) without one), y int64 (B,)."""
    # YOUR CODE HERE
    raise NotImplementedError("write the epoch: see docs/exercises/loader_epoch_order.py")
