"""Worked solution: the batch loader's epoch (chapter 1).

python -m pathmnist.exercises check docs/solutions/loader_epoch_order.py
"""

import torch

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
    n, b = self.num_samples, self.batch_size
    self.generator.manual_seed(self.seed * 1_000_003 + self.epoch)
    order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
    if self.on_device:
        order = order.to(self.device)  # One copy of n indices, then every slice is there.
    for start in range(0, len(self) * b, b):  # len() already dropped a short last batch.
        idx = order[start : start + b]
        if self.on_device:
            x = self.images.index_select(0, idx)  # (B, H, W, 3) uint8
            y = self.labels.index_select(0, idx)  # (B,) int64
        else:
            x, y = self._host_batch(idx)
        yield (x if self.transform is None else self.transform(x, self.generator)), y
