"""The learning-rate range test ("LR finder"): train for a short while with a learning rate
that grows exponentially, batch by batch, and watch where the loss falls fastest and where
it blows up.

Smith 2017, "Cyclical Learning Rates for Training Neural Networks" (WACV; arXiv 1506.01186),
section 3.3 proposed the range test: one short run with a rising learning rate shows the
range in which the network learns. fastai's `lr_find` (Howard & Gugger 2020, "fastai: A
Layered API for Deep Learning", arXiv 2002.04688; its LRFinder callback) made it the usual
first step, with the choices kept here:

- the schedule is geometric, lr_i = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1)),
  one step per batch, so every decade of learning rates gets the same number of steps;
- the loss is smoothed by an exponential moving average with bias correction (beta 0.98),
  avg_i = beta avg_{i-1} + (1 - beta) loss_i, smoothed_i = avg_i / (1 - beta ** (i + 1)),
  since a single batch's loss is too noisy to read;
- the test stops when the smoothed loss exceeds `diverge` (4) times its minimum so far, or
  a loss is not finite: past that point the curve says nothing more;
- the model's and the optimizer's states are copied before and loaded back after, so the
  test leaves the model as it found it.

Reading the curve: the loss stays flat while the rate is too small to matter, falls, reaches
a minimum and then rises steeply. A good rate lies on the falling part, about a decade below
the minimum (fastai's `lr_min / 10`) or where the fall is steepest (`steepest()`).

Tested in tests/test_lr_finder.py: the schedule equals numpy.geomspace and the rates of
torch.optim.lr_scheduler.ExponentialLR (relative 1e-12), rises strictly, the smoothing
equals the formula above, the test stops on a diverging loss and at once on a NaN, and the
model and optimizer come back bit for bit.
"""

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch.nn.functional as F

from pathmnist import checks
from pathmnist.errors import PathMNISTError

BETA = 0.98  # fastai's smoothing: an average over about 1 / (1 - 0.98) = 50 batches.
DIVERGE = 4.0  # fastai's stop rule: the smoothed loss above 4x its minimum.


def lr_schedule(start_lr: float = 1e-7, end_lr: float = 10.0, num_steps: int = 100) -> list[float]:
    """The `num_steps` learning rates from `start_lr` to `end_lr`, evenly spaced in log."""
    start = checks.real(start_lr, "start_lr", 0, low_open=True)
    end = checks.real(end_lr, "end_lr", 0, low_open=True)
    n = checks.whole(num_steps, "num_steps", 2)
    if end <= start:
        raise PathMNISTError(
            f"end_lr={end_lr!r} is not above start_lr={start_lr!r}; the range test needs a "
            "rising learning rate, e.g. start_lr=1e-7, end_lr=10."
        )
    ratio = end / start
    # The exponent i / (n - 1) reaches exactly 1 at the end, so the last rate is end_lr.
    return [start * ratio ** (i / (n - 1)) for i in range(n)]


def smooth(losses, beta: float = BETA) -> list[float]:
    """Bias-corrected exponential moving average of `losses` (Adam's correction: without
    it the first values would be pulled towards the average's start at 0)."""
    beta = checks.real(beta, "beta", 0, 1, high_open=True)
    avg, out = 0.0, []
    for i, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * float(loss)
        out.append(avg / (1 - beta ** (i + 1)))
    return out


@dataclass
class LRFinderResult:
    """What `lr_range_test` recorded, one entry per optimizer step."""

    lrs: list[float]  # The learning rate of each step (a prefix of lr_schedule's list).
    losses: list[float]  # The batch loss of each step, as computed (before the update).
    smoothed: list[float]  # `smooth(losses, beta)`.
    diverged: bool  # True when the test stopped early: the loss blew up or became NaN.
    reason: str = ""  # One sentence on why the test stopped.
    beta: float = BETA  # The smoothing the curve was drawn with.

    def minimum(self) -> float:
        """The learning rate at the smallest smoothed loss (rather too high to train with:
        fastai suggests a tenth of it)."""
        pairs = zip(self.smoothed, self.lrs, strict=True)
        finite = [(s, lr) for s, lr in pairs if math.isfinite(s)]
        if not finite:
            raise PathMNISTError("the range test recorded no finite loss; lower start_lr.")
        return min(finite)[1]

    def steepest(self, skip_start: int | None = None) -> float:
        """The learning rate where the smoothed loss falls fastest per decade of learning
        rate, among the steps before its minimum, leaving out the first `skip_start` steps
        (default: a tenth of them, at least one), where the average still rests on a few
        batches (fastai's plot skips the first 10 of 100)."""
        s = np.asarray(self.smoothed, dtype=np.float64)
        skip = (
            max(1, len(s) // 10) if skip_start is None else checks.whole(skip_start, "skip_start")
        )
        end = int(np.nanargmin(np.where(np.isfinite(s), s, np.nan))) + 1
        if end - skip < 3:
            raise PathMNISTError(
                "the smoothed loss hardly fell during the range test; lower start_lr or "
                "check the data and the loss."
            )
        slope = np.gradient(s[skip:end], np.log10(self.lrs[skip:end]))  # Change per decade.
        return float(self.lrs[skip + int(np.argmin(slope))])


def _batches(loader):
    """Batches of `loader` without end: epoch 0, 1, ... (set_epoch when it has one)."""
    epoch = 0
    while True:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise PathMNISTError("the loader yielded no batches; pass a split with images.")
        epoch += 1


def lr_range_test(model, loader, optimizer, loss_fn=None, start_lr: float = 1e-7,
                  end_lr: float = 10.0, num_steps: int = 100, beta: float = BETA,
                  diverge: float = DIVERGE) -> LRFinderResult:  # fmt: skip
    """Train `model` one step per batch of `loader` (cycling through it as often as
    needed) at the rates of `lr_schedule(start_lr, end_lr, num_steps)`; stop early when the
    smoothed loss exceeds `diverge` times its minimum or a loss is not finite. The model's
    weights, buffers and train/eval mode and the optimizer's state and rates are restored
    afterwards. `loss_fn(logits, labels)` defaults to cross-entropy."""
    lrs = lr_schedule(start_lr, end_lr, num_steps)
    beta = checks.real(beta, "beta", 0, 1, high_open=True)
    diverge = checks.real(diverge, "diverge", 1, low_open=True)
    loss_fn = loss_fn or F.cross_entropy
    # Copies, not aliases: the steps below change the live tensors.
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    was_training = model.training
    result = LRFinderResult([], [], [], diverged=False, beta=beta)
    avg, best = 0.0, math.inf
    model.train()
    try:
        # The batches never end: zip stops at the last rate (lrs comes first, so no batch
        # is drawn beyond it).
        for i, (lr, (x, y)) in enumerate(zip(lrs, _batches(loader), strict=False)):
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)  # Scalar: this batch's mean loss.
            value = float(loss.detach())  # One sync per step: the stop rule needs the number.
            result.lrs.append(lr)
            result.losses.append(value)
            if not math.isfinite(value):
                result.smoothed.append(value)
                result.diverged = True
                result.reason = f"the loss became {value} at lr {lr:.3g} (step {i + 1})."
                break
            avg = beta * avg + (1 - beta) * value
            smoothed = avg / (1 - beta ** (i + 1))
            result.smoothed.append(smoothed)
            if smoothed > diverge * best:
                result.diverged = True
                result.reason = (
                    f"the smoothed loss {smoothed:.4g} passed {diverge:g} x its minimum "
                    f"{best:.4g} at lr {lr:.3g} (step {i + 1})."
                )
                break
            best = min(best, smoothed)
            loss.backward()
            optimizer.step()
        else:
            result.reason = f"reached end_lr {lrs[-1]:.3g} after {len(lrs)} steps."
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        model.train(was_training)
    return result


def plot(result: LRFinderResult, path=None, ax=None):
    """The range test's figure: the batch losses (faint) and their smoothed curve against
    the learning rate on a log axis, with the steepest descent and a tenth of the minimum
    marked. Saved to `path` when given; returns the matplotlib Figure."""
    import matplotlib.pyplot as plt  # Only the figure needs matplotlib.

    fig = ax.figure if ax is not None else plt.figure(figsize=(6.4, 3.6))
    ax = ax if ax is not None else fig.add_subplot()
    ax.plot(result.lrs, result.losses, color="0.75", lw=1, label="batch loss")
    ax.plot(result.lrs, result.smoothed, color="C0", lw=2, label=f"smoothed (beta {result.beta})")
    for lr, style, name in ((result.steepest(), "C2", "steepest"),
                            (result.minimum() / 10, "C3", "minimum / 10")):  # fmt: skip
        ax.axvline(lr, color=style, ls="--", lw=1, label=f"{name}: {lr:.1e}")
    ax.set_xscale("log")
    finite = [v for v in result.smoothed if math.isfinite(v)]
    if finite:  # Scale to the curve up to its minimum: the blow-up runs off the top.
        low = min(finite)
        high = max(finite[: finite.index(low) + 1])
        margin = 0.25 * (high - low) + 1e-3
        ax.set_ylim(low - margin, high + 2 * margin)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    # Below the axes: inside, it would hide the curve's right end, where it blows up.
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
