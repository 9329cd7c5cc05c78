"""The training loop: train_one_epoch, evaluate (with test-time augmentation), and fit.

The seed project's recipe, written out with plain torch: cross-entropy loss, Adam (or SGD
with momentum 0.9) with L2 weight decay, `schedulers.StepLR` stepped once per epoch,
`early_stopping.EarlyStopping` on the validation loss with the best weights restored.
The settings are a `config.TrainConfig`; `fit` writes the run directory (config.json,
history.csv, last.pt, best.pt) through `pathmnist.checkpoints` and `pathmnist.rundir`.

Mixed precision: with precision "bf16" the network up to the pooled features runs under
`torch.autocast` in bfloat16 on channels_last tensors; the classifier, the loss and the
softmax run in float32, so probabilities, the validation loss that early stopping watches
and the macro AUC keep 24 mantissa bits (bf16 keeps 8, which ties many probabilities).

Tested in tests/test_training.py on tiny synthetic sets: the loss falls, the same seed
gives the same history, a resumed run ends with bit-identical weights to an uninterrupted
one, early stopping restores the best weights, evaluate's probabilities equal torch's
softmax, TTA equals an explicit loop over the 8 views, and every user error is a
PathMNISTError.
"""

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from pathmnist import checkpoints, dihedral, losses, metrics, mixing, rundir, stain
from pathmnist.config import MONITORS, TrainConfig, seed_everything
from pathmnist.data import ImageSet
from pathmnist.device import configure_backends, fused_available, resolve_device, resolve_precision
from pathmnist.early_stopping import EarlyStopping
from pathmnist.errors import PathMNISTError
from pathmnist.history import History, format_epoch
from pathmnist.io import write_json
from pathmnist.loader import BatchLoader
from pathmnist.resnet import build
from pathmnist.schedulers import StepLR
from pathmnist.transforms import build_transforms, channel_stats

EVAL_BATCH_SIZE = 512  # No activations kept for backward, so 4x the training batch fits.
PROGRESS_EVERY = 10  # Batches between progress-bar numbers: each costs a GPU sync.


def build_optimizer(config: TrainConfig, model) -> torch.optim.Optimizer:
    """Adam(lr, weight_decay) or SGD(lr, momentum, weight_decay), as the seed. On CUDA the
    fused kernels update every parameter in one launch instead of several per tensor."""
    device = next(model.parameters()).device
    c, fused = config, (True if fused_available(device) else None)
    if c.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=c.lr,
            momentum=c.momentum,
            weight_decay=c.weight_decay,
            fused=fused,
        )
    return torch.optim.Adam(model.parameters(), lr=c.lr, weight_decay=c.weight_decay, fused=fused)


def forward(model, x, precision):
    """Logits in float32: the features under bf16 autocast (channels_last) if asked, the
    classifier `fc` outside autocast in float32."""
    features = getattr(model, "features_fn", model.features)  # Compiled by fit's --compile.
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        f = features(x)  # (B, 512), bfloat16 under autocast
    return model.fc(f.float())  # (B, C) float32


def train_one_epoch(
    model, loader, optimizer, precision="fp32", progress=None, loss_fn=None, mix=None
):
    """One pass over `loader`, one optimizer step per batch; returns (mean loss, accuracy)
    over the samples seen. `progress` (a tqdm bar or None) advances once per batch.
    `loss_fn(logits, target)` defaults to cross-entropy; `mix(x, y, generator)` (MixUp or
    CutMix) turns labels into soft targets, and accuracy then counts the argmax of the
    target."""
    loss_fn = loss_fn or F.cross_entropy
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
        optimizer.zero_grad(set_to_none=True)  # .grad accumulates unless cleared.
        logits = forward(model, x, precision)  # (B, C)
        loss = loss_fn(logits, target)  # Scalar: mean loss of the batch.
        loss.backward()  # d loss / d parameter, into each .grad
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


def evaluate(model, loader, precision="fp32", tta=False) -> Evaluation:
    """Mean loss, accuracy and macro AUC over `loader`, in eval mode without gradients.
    With `tta`, each image's probabilities are the mean softmax over its 8 dihedral views
    (and the loss is the NLL of that mean)."""
    was_training = model.training
    model.eval()  # BatchNorm uses its running statistics: one answer per image.
    probs, labels, loss_sum = [], [], 0.0  # Kept on the device until the end: no sync.
    with torch.no_grad():  # No graph is recorded: less memory and time.
        for x, y in loader:
            if tta:  # The mean of 8 softmaxes; its NLL is the loss.
                views = dihedral.views(x)
                p = sum(forward(model, v, precision).softmax(dim=1) for v in views) / 8
                nll = F.nll_loss(p.clamp_min(1e-30).log(), y, reduction="sum")
            else:
                logits = forward(model, x, precision)  # (B, C) float32
                p, nll = logits.softmax(dim=1), F.cross_entropy(logits, y, reduction="sum")
            loss_sum = loss_sum + nll.double()
            probs.append(p)  # (B, C) float32
            labels.append(y)
    model.train(was_training)
    if not labels:
        raise PathMNISTError("evaluate got an empty loader; pass a split with images.")
    p = torch.cat(probs).cpu().numpy()  # (N, C): one copy to the host for the whole split.
    y = torch.cat(labels).cpu().numpy()  # (N,)
    loss = float(loss_sum) / len(y)
    if not np.isfinite(p).all():  # Diverged weights: no metric means anything; say so.
        return Evaluation(math.nan, math.nan, math.nan, p, y)
    return Evaluation(loss, metrics.accuracy(y, p), metrics.macro_auc(y, p), p, y)


def evaluate_imageset(model, imageset, eval_transform, config: TrainConfig) -> Evaluation:
    """`evaluate` on a whole split, on the config's device and precision (and TTA)."""
    device = resolve_device(config.device)
    loader = BatchLoader(
        imageset, EVAL_BATCH_SIZE, shuffle=False, transform=eval_transform, device=device
    )
    precision = resolve_precision(config.precision, device)
    return evaluate(model.to(device), loader, precision, tta=config.tta)


def _check_splits(train, val) -> None:
    for name, split, least in (("train", train, 2), ("val", val, 1)):
        if not isinstance(split, ImageSet) or len(split) < least:
            raise PathMNISTError(
                f"fit needs the {name} split as an ImageSet of at least "
                f"{least} image(s); pass data.load_split({name!r}, ...)."
            )
    if train.class_names != val.class_names:
        raise PathMNISTError(
            f"train has classes {train.class_names} but val has "
            f"{val.class_names}; load both splits from the same file."
        )


def _diverged(split, loss, epoch, lr, rows) -> PathMNISTError:
    """The sentence for a loss that became NaN or infinite; the run files stay as the last
    finished epoch wrote them."""
    kept = f"best.pt and history.csv keep epoch {len(rows)}" if rows else "no epoch ended"
    return PathMNISTError(
        f"the {split} loss became {loss} in epoch {epoch}: the learning rate {lr:g} is likely "
        f"too high; lower --lr ({kept})."
    )


def _prepare(config, train, val, out_dir, resume, overwrite):
    """Check everything, then start or resume the run folder; return (info, saved)."""
    data = {"train": checkpoints.data_identity(train), "val": checkpoints.data_identity(val)}
    rundir.check_start(out_dir, resume, overwrite)
    fresh = resume and rundir.unstarted(out_dir)  # Stopped before epoch 1: start it again.
    saved = checkpoints.open_run(out_dir, config.to_dict(), data) if resume and not fresh else None
    rundir.start(out_dir, resume, overwrite)
    if saved:
        mean, std, stain_target = saved["mean"], saved["std"], saved.get("stain")
    else:
        mean, std = channel_stats(train)
        stain_target = None  # Macenko's target stain, fitted on the training split.
        if config.stain_normalize:
            stains, max_conc = stain.fit_macenko(train.images)
            stain_target = {"stains": stains.tolist(), "max_conc": max_conc.tolist()}
    info = {
        "config": config.to_dict(),
        "num_classes": train.num_classes,
        "sizes": {"train": len(train), "val": len(val)},
        "data": data,
        "class_names": list(train.class_names),
        "mean": list(mean),
        "std": list(std),
        "stain": stain_target,
    }
    return info, saved


def fit(
    config: TrainConfig,
    train: ImageSet,
    val: ImageSet,
    out_dir,
    resume: bool = False,
    quiet: bool = False,
    overwrite: bool = False,
) -> History:
    """Train `config` on `train`, validate on `val` after every epoch, write the run files
    into `out_dir`, and return the History with the best weights restored.

    A folder holding an earlier run is refused unless `resume=True` (continue it: the same
    settings, but `config.epochs` may be raised, and the same data) or `overwrite=True`
    (replace it). A resumed run ends exactly where an uninterrupted one would, bit for bit
    on the CPU. A NaN or infinite training loss stops the run with a PathMNISTError,
    leaving best.pt and history.csv as the last good epoch wrote them.
    """
    config.validate()
    _check_splits(train, val)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    with rundir.lock(out_dir) as out:
        info, saved = _prepare(config, train, val, out, resume, overwrite)
        return _train(config, train, val, out, info, saved, device, precision, quiet)


def _train(config, train, val, out_dir, info, saved, device, precision, quiet):
    train_tf, eval_tf = build_transforms(
        info["mean"], info["std"], config.augment, config.size, info["stain"]
    )
    configure_backends(device, config.deterministic)
    seed_everything(config.seed)  # Same seed, same initial weights.
    model = build(config.arch, num_classes=train.num_classes, stem=config.stem).to(device)
    if precision == "bf16":  # NHWC weights: the layout bf16 convolution kernels want.
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(config, model)
    scheduler = StepLR(optimizer, config.step_size, config.gamma)
    stopper = EarlyStopping(
        config.patience, config.min_delta, MONITORS[config.monitor], monitor=config.monitor
    )
    rows, stopped = [], False
    if saved:
        rows, stopped = checkpoints.restore(out_dir, saved, model, optimizer, scheduler, stopper)
    if config.compile:  # Compiles at the first batch; the weights stay the same tensors.
        model.features_fn = torch.compile(model.features)
    write_json(out_dir / "config.json", info)
    History(rows).to_csv(out_dir / "history.csv")  # A crash may have left it behind.
    loss_fn = losses.build_loss(
        config.loss, train.labels, train.num_classes, config.label_smoothing, config.focal_gamma
    )
    mix = mixing.build_mix(config.mixup, config.cutmix, train.num_classes)  # None when off

    todo = [] if stopped else range(len(rows) + 1, config.epochs + 1)
    if todo:  # Only then: the loaders copy the whole splits to the device.
        # A last batch of one image breaks BatchNorm where layer4 is 1x1, so drop it then.
        one_left = len(train) % config.batch_size == 1
        train_loader = BatchLoader(
            train,
            config.batch_size,
            shuffle=True,
            seed=config.seed,
            transform=train_tf,
            device=device,
            drop_last=one_left,
        )
        val_loader = BatchLoader(
            val, EVAL_BATCH_SIZE, shuffle=False, transform=eval_tf, device=device
        )
    for epoch in todo:
        start, lr = time.perf_counter(), optimizer.param_groups[0]["lr"]
        train_loader.set_epoch(epoch)  # (seed, epoch) fixes this epoch's order and draws.
        # disable=None: tqdm shows the bar only on a terminal.
        with tqdm(
            total=len(train_loader),
            desc=f"epoch {epoch}/{config.epochs}",
            leave=False,
            unit="batch",
            disable=True if quiet else None,
        ) as bar:
            train_loss, train_acc = train_one_epoch(
                model, train_loader, optimizer, precision, bar, loss_fn, mix
            )
        if not math.isfinite(train_loss):
            raise _diverged("training", train_loss, epoch, lr, rows)
        ev = evaluate(model, val_loader, precision, tta=config.tta)
        if not math.isfinite(ev.loss):
            raise _diverged("validation", ev.loss, epoch, lr, rows)
        rows.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_acc": train_acc,
                "val_loss": ev.loss,
                "val_acc": ev.accuracy,
                "val_auc": ev.macro_auc,
                "lr": lr,
                "seconds": time.perf_counter() - start,
                "device": device.type,
                "precision": precision,
            }
        )
        scheduler.step()  # Once per epoch, after it: sets the next epoch's lr.
        stopped = stopper.step(rows[-1][config.monitor], model)  # Copies the best weights.
        checkpoints.save_epoch(out_dir, info, model, optimizer, scheduler, stopper, rows, stopped)
        if not quiet:  # One line per epoch, printed above the progress bar.
            tqdm.write(format_epoch(rows[-1], config.epochs, stopper.best_epoch == epoch))
        if stopped:
            break
    if stopped and not quiet:
        tqdm.write(stopper.reason)
    stopper.restore(model)  # The best epoch's weights, not the last epoch's.
    return History(rows, stopper.best_epoch, stopped, model.eval(), eval_tf)
