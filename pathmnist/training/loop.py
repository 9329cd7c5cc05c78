"""One epoch of training and one pass of evaluation: the loop pieces every run shares.

`forward` gives float32 logits: the network up to the pooled features runs under
`torch.autocast` in bfloat16 when the precision is "bf16"; the classifier, the loss and
the softmax run in float32, so probabilities, the validation loss that early stopping
watches and the macro AUC keep 24 mantissa bits (bf16 keeps 8, which ties many
probabilities). `train_one_epoch` makes one optimizer step per batch (with MixUp or
CutMix as soft targets when asked). `evaluate` returns an `Evaluation` (logits,
probabilities, loss, accuracy, macro AUC) in eval mode without gradients; with test-time
augmentation each image's probabilities are the mean softmax over its 8 dihedral views.
Every place that computes a run's predictions (validation, final evaluation of either
model, calibration) goes through `evaluate`, so TTA is applied the same way everywhere.

Under --compile a new batch size would compile a new graph, and every split ends with a
smaller batch: training marks the batch dimension dynamic (one graph serves every size;
padding would change BatchNorm's batch statistics, and dropping the last batch would
change which images an epoch sees), evaluation pads its last batch to the full size
(exact in eval mode) and keeps a static graph. A run compiles two graphs, train and eval.

Tested in tests/test_loop.py: the loss falls, evaluate's probabilities equal torch's
softmax, TTA equals an explicit loop over the 8 views, a padded last batch gives the
same logits, and a compiled run makes two graphs however its splits end.
"""

import contextlib
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pathmnist.augment import dihedral
from pathmnist.config import TrainConfig
from pathmnist.data.loader import BatchLoader
from pathmnist.device import memory_format, resolve_device, resolve_precision
from pathmnist.errors import PathMNISTError
from pathmnist.evaluation import metrics

EVAL_BATCH_SIZE = 512  # No activations kept for backward, so 4x the training batch fits.


PROGRESS_EVERY = 10  # Batches between progress-bar numbers: each costs a GPU sync.


def forward(model, x, precision, features=None):
    """Logits in float32: the features under bf16 autocast (channels_last) if asked, the
    classifier `fc` outside autocast in float32. `features` replaces `model.features` (fit
    passes the compiled one under --compile; the weights are the same tensors).

    The batch is put in the weights' memory format first (`device.memory_format`: NCHW
    in fp32, channels_last in bf16): one conversion per batch, where a batch in the other
    layout would make every convolution convert its input and its gradient."""
    features = features or model.features
    x = x.contiguous(memory_format=memory_format(precision))  # No copy when it already is.
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        f = features(x)  # (B, 512), bfloat16 under autocast
    return model.fc(f.float())  # (B, C) float32


class Timers:
    """Opt-in wall-clock seconds of a run's named sections, summed: `with timers("compute"):`
    around forward, loss, backward and the optimizer step (and the evaluation forward),
    `with timers("epoch"):` around each epoch in `fit`. On a GPU each section starts and
    ends with a synchronisation, so that it measures the work and not its queueing; that
    costs speed, hence opt-in (benchmarks/run.py turns it on). `seconds`: {name: s}."""

    def __init__(self, device="cpu"):
        self.seconds = {}
        self._cuda = torch.device(device).type == "cuda"

    @contextlib.contextmanager
    def __call__(self, name):
        if self._cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self._cuda:
                torch.cuda.synchronize()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def _untimed(name):
    return contextlib.nullcontext()


def _padded(model, x, precision, features, full):
    """forward() on a batch padded to `full` rows (copies of its last image), then cut
    back: under --compile the last, smaller batch of a split reuses the graph of the full
    batches instead of compiling another one. Exact in eval mode, where each row's logits
    depend on that row alone (BatchNorm uses its running statistics)."""
    n = x.shape[0]
    if full is None or n >= full:
        return forward(model, x, precision, features)
    pad = x[-1:].expand(full - n, *x.shape[1:])
    return forward(model, torch.cat([x, pad]), precision, features)[:n]  # (n, C)


def train_one_epoch(
    model,
    loader,
    optimizer,
    precision="fp32",
    progress=None,
    loss_fn=None,
    mix=None,
    features=None,
    timers=None,
    replica=None,
):
    """One pass over `loader`, one optimizer step per batch; returns (mean loss, accuracy)
    over the samples seen. `progress` (a tqdm bar or None) advances once per batch.
    `loss_fn(logits, target)` defaults to cross-entropy; `mix(x, y, generator)` (MixUp or
    CutMix) turns labels into soft targets, and accuracy then counts the argmax of the
    target. `timers` (a `Timers`, or None) times the "compute" section. `replica`
    (data-parallel training, `training.ddp.wrap`): the forward runs through it so that
    backward averages gradients over the ranks, each rank's loss weighted by
    `loader.loss_scale`, and the returned numbers are over every rank's samples."""
    loss_fn = loss_fn or F.cross_entropy
    section = timers or _untimed
    model.train()  # BatchNorm normalises with batch statistics and updates running ones.
    # Sums stay device tensors: reading them (.item(), float()) would wait for the GPU.
    loss_sum = torch.zeros((), dtype=torch.float64, device=loader.device)
    correct = torch.zeros((), dtype=torch.int64, device=loader.device)
    seen = 0
    show = progress is not None and not progress.disable
    for i, (x, y) in enumerate(loader):  # x (B, 3, H, W) float32, y (B,) int64
        target = y
        if mix is not None:  # Soft targets (B, C); "correct" then means the larger share.
            x, target = mix(x, y, loader.generator)
            y = target.argmax(1)
        x = x.contiguous(memory_format=memory_format(precision))  # As forward() would.
        if features is not None:  # Compiled: one graph for every batch size (docstring).
            torch._dynamo.maybe_mark_dynamic(x, 0)
        with section("compute"):
            optimizer.zero_grad(set_to_none=True)  # .grad accumulates unless cleared.
            if replica is None:
                logits = forward(model, x, precision, features)  # (B, C)
                loss = loss_fn(logits, target)  # Scalar: mean loss of the batch.
                loss.backward()  # d loss / d parameter, into each .grad
            else:  # A rank's shard may be empty (a last batch smaller than the ranks): loss 0.
                logits = replica(x)
                loss = loss_fn(logits, target) if len(y) else logits.sum()
                (loss * loader.loss_scale).backward()  # DDP averages the gradients over ranks.
            optimizer.step()  # One Adam or SGD update from those gradients.
        loss_sum += loss.detach() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        if progress is not None:
            progress.update(1)
            if show and (i % PROGRESS_EVERY == 0 or i == len(loader) - 1):
                progress.set_postfix(  # Only when shown: float() waits for the GPU.
                    loss=f"{float(loss_sum) / seen:.4f}",
                    acc=f"{int(correct) / seen:.4f}",
                    refresh=False,
                )
    if replica is not None:  # Sums over every rank's samples, each counted once.
        sums = torch.stack([loss_sum, correct.double(), torch.tensor(float(seen)).to(loss_sum)])
        torch.distributed.all_reduce(sums)
        loss_sum, correct, seen = sums[0], sums[1].long(), int(sums[2])
    if seen == 0:
        raise PathMNISTError("the training loader yielded no batches; use a smaller batch size.")
    return float(loss_sum) / seen, int(correct) / seen


@dataclass
class Evaluation:
    """Loss, accuracy and macro AUC of a split, with the class probabilities behind them."""

    loss: float
    accuracy: float
    macro_auc: float
    probs: np.ndarray  # (N, C) float32 softmax of the logits; rows sum to 1.
    labels: np.ndarray  # (N,) int64
    # (N, C) float32 logits; under TTA the log of the mean softmax, whose softmax is `probs`.
    logits: np.ndarray | None = None


def evaluate(model, loader, precision="fp32", tta=False, features=None, timers=None) -> Evaluation:
    """Mean loss, accuracy and macro AUC over `loader`, in eval mode without gradients.
    With `tta`, each image's probabilities are the mean softmax over its 8 dihedral views
    (and the loss is the NLL of that mean). `timers` times the forward as "compute"."""
    section = timers or _untimed
    was_training = model.training
    full = getattr(loader, "batch_size", None) if features is not None else None
    model.eval()  # BatchNorm uses its running statistics: one answer per image.
    logits_, probs, labels, loss_sum = [], [], [], 0.0  # On the device until the end: no sync.
    with torch.no_grad():  # No graph is recorded: less memory and time.
        for x, y in loader:
            if tta:  # The mean of 8 softmaxes; its NLL is the loss.
                views = dihedral.views(x)
                with section("compute"):
                    p = sum(_padded(model, v, precision, features, full).softmax(1) for v in views)
                p = p / 8
                logits = p.clamp_min(1e-30).log()  # softmax(log p) = p: logits of the mean.
                nll = F.nll_loss(logits, y, reduction="sum")
            else:
                with section("compute"):
                    logits = _padded(model, x, precision, features, full)  # (B, C) float32
                p, nll = logits.softmax(dim=1), F.cross_entropy(logits, y, reduction="sum")
            loss_sum = loss_sum + nll.double()
            logits_.append(logits)
            probs.append(p)  # (B, C) float32
            labels.append(y)
    model.train(was_training)
    if not labels:
        raise PathMNISTError("evaluate got an empty loader; pass a split with images.")
    p = torch.cat(probs).cpu().numpy()  # (N, C): one copy to the host for the whole split.
    y = torch.cat(labels).cpu().numpy()  # (N,)
    z = torch.cat(logits_).cpu().numpy()  # (N, C)
    loss = float(loss_sum) / len(y)
    if not np.isfinite(p).all():  # Diverged weights: no metric means anything; say so.
        return Evaluation(math.nan, math.nan, math.nan, p, y, z)
    return Evaluation(loss, metrics.accuracy(y, p), metrics.macro_auc(y, p), p, y, z)


@dataclass(frozen=True)
class Predictor:
    """A trained model and how to feed it, fixed once per run: its eval transform, the
    device and precision resolved once, and whether it predicts with TTA. Every place that
    computes a run's predictions (final evaluation of either model, calibration) uses one,
    so TTA and precision are applied the same way everywhere."""

    model: torch.nn.Module
    eval_transform: object  # uint8 (B, H, W, 3) -> normalised float (B, 3, H, W)
    device: torch.device
    precision: str  # "fp32" or "bf16", as `device.resolve_precision` decided.
    tta: bool = False

    @classmethod
    def for_config(cls, model, eval_transform, config: TrainConfig) -> "Predictor":
        """Resolve the config's device and precision once; the model moves there."""
        device = resolve_device(config.device)
        precision = resolve_precision(config.precision, device)
        return cls(model.to(device).eval(), eval_transform, device, precision, config.tta)

    def evaluate(self, imageset, batch_size: int = EVAL_BATCH_SIZE) -> Evaluation:
        """`evaluate` over a whole split, in order."""
        loader = BatchLoader(
            imageset, batch_size, shuffle=False, transform=self.eval_transform, device=self.device
        )
        return evaluate(self.model, loader, self.precision, tta=self.tta)
