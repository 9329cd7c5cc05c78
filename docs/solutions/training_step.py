"""Worked solution: the training step (chapter 7).

python -m pathmnist.exercises check docs/solutions/training_step.py
"""

import torch
import torch.nn.functional as F

from pathmnist.errors import PathMNISTError
from pathmnist.training.loop import forward

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
        optimizer.zero_grad(set_to_none=True)  # 1. .grad accumulates unless cleared.
        logits = forward(model, x, precision, features)  # 2. (B, C) float32
        loss = loss_fn(logits, target)  # 3. scalar: the batch's mean loss
        loss.backward()  # 4. d loss / d parameter into every .grad,
        optimizer.step()  #    then one Adam or SGD update from them.
        loss_sum += loss.detach() * len(y)  # 5. on the device: no sync per batch
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        if progress is not None:
            progress.update(1)
    if seen == 0:
        raise PathMNISTError("the training loader yielded no batches; use a smaller batch size.")
    return float(loss_sum) / seen, int(correct) / seen
