"""Exercise for chapter 7 (the training loop): the training step.

Write the heart of `pathmnist.training.loop.train_one_epoch`: for each batch, one optimizer
step, and the running sums behind the epoch's mean loss and accuracy. Everything around it
is written for you below (train mode, MixUp/CutMix targets, the progress bar, the
empty-loader check). Per batch:

1. clear the gradients: `.grad` accumulates across backward() calls;
2. the logits, (B, C): `forward(model, x, precision)` (it handles bf16 autocast);
3. the loss: `loss_fn(logits, target)`, the batch's mean;
4. backward, then one optimizer step;
5. add the batch's share to the sums: `loss_sum += loss.detach() * len(y)` (a device
   tensor: no `.item()`, which would make the CPU wait for the GPU at every batch),
   `correct += (argmax of the logits == y).sum()`, and `seen += len(y)`.

`fit` calls this function once per epoch, so once yours is swapped in the package's
training runs use it. The oracle (tests/test_fit.py): the weights move, the loss
falls over three epochs, and a NaN loss is reported by `fit` with one sentence:

    python -m pathmnist.exercises check docs/exercises/training_step.py

Once it passes, add "test_same_seed_same_history" and "test_resume_is_bit_identical" to
ORACLE_TESTS. Then try chapter 11's bugs on purpose: leave out step 1 and check again.
"""

import torch
import torch.nn.functional as F

from pathmnist.errors import PathMNISTError
from pathmnist.training.loop import forward  # noqa: F401 - yours will need it.

REPLACES = {"pathmnist.training.loop.train_one_epoch": "train_one_epoch"}
ORACLE_TESTS = (
    "test_train_one_epoch_reports_mean_loss_and_accuracy",
    "test_training_loss_falls",
    "test_a_nan_loss_stops_with_one_sentence",
)


def train_one_epoch(model, loader, optimizer, precision="fp32", progress=None, loss_fn=None,
                    mix=None, features=None):  # fmt: skip
    """One pass over `loader`, one optimizer step per batch; returns (mean loss, accuracy)
    over the samples seen."""
    loss_fn = loss_fn or F.cross_entropy
    model.train()  # BatchNorm: batch statistics, running averages updated.
    loss_sum = torch.zeros((), dtype=torch.float64, device=loader.device)
    correct = torch.zeros((), dtype=torch.int64, device=loader.device)
    seen = 0
    for x, y in loader:  # x (B, 3, H, W) float32, y (B,) int64
        target = y
        if mix is not None:  # Soft targets (B, C); "correct" then means the larger share.
            x, target = mix(x, y, loader.generator)
            y = target.argmax(1)
        # YOUR CODE HERE: steps 1 to 5 at the top of this file.
        raise NotImplementedError("write the training step: see docs/exercises/training_step.py")
        if progress is not None:
            progress.update(1)
    if seen == 0:
        raise PathMNISTError("the training loader yielded no batches; use a smaller batch size.")
    return float(loss_sum) / seen, int(correct) / seen
