"""The training loop: TrainConfig, train_one_epoch, evaluate, and fit (with resume).

The seed project's recipe, written out with plain torch: cross-entropy loss, Adam (or SGD
with momentum 0.9) with L2 weight decay, `schedulers.StepLR` stepped once per epoch,
`early_stopping.EarlyStopping` on the validation loss with the best weights restored.
`fit` writes the run directory (config.json, history.csv, last.pt, best.pt) through
`pathmnist.checkpoints`, which also defines TrainConfig, History and load_checkpoint;
they are re-exported here, where the course uses them.

Mixed precision: with precision "bf16" the forward pass runs under `torch.autocast` in
bfloat16 on channels_last tensors; the loss is computed in float32. "auto" picks bf16 only
where the hardware has it natively (a CUDA GPU with bf16, or a CPU with AVX512-BF16 or
AMX), fp32 elsewhere.

Tested in tests/test_training.py on tiny synthetic sets: the loss falls, the same seed
gives the same history, a resumed run ends with bit-identical weights to an uninterrupted
one, early stopping restores the best weights, evaluate's probabilities equal torch's
softmax, and every user error is a PathMNISTError.
"""

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from pathmnist import checkpoints, metrics
from pathmnist.checkpoints import (  # noqa: F401 - re-exported: the course imports them here.
    DEVICES,
    MONITORS,
    OPTIMIZERS,
    PRECISIONS,
    Checkpoint,
    History,
    TrainConfig,
    load_checkpoint,
)
from pathmnist.data import BatchLoader, ImageSet
from pathmnist.early_stopping import EarlyStopping
from pathmnist.errors import PathMNISTError
from pathmnist.io import write_json
from pathmnist.resnet import ARCHS
from pathmnist.schedulers import StepLR
from pathmnist.transforms import build_transforms, channel_stats

CPUINFO = "/proc/cpuinfo"  # Linux's list of CPU feature flags.
EVAL_BATCH_SIZE = 512  # No activations kept for backward, so 4x the training batch fits.
criterion = nn.CrossEntropyLoss()  # Batch mean of -log softmax(logits)[label].


def cpu_supports_bf16() -> bool:
    """True on a CPU with native bf16 arithmetic: AVX512-BF16 or AMX (x86), BF16 (Arm)."""
    if any(k in torch.backends.cpu.get_cpu_capability() for k in ("AMX", "BF16")):
        return True  # torch reports e.g. "AVX2", "AVX512"; newer builds may name AMX.
    try:
        with open(CPUINFO) as f:
            flags = {
                w for line in f if line.startswith(("flags", "Features")) for w in line.split()
            }
    except OSError:  # Not Linux: assume no native bf16, so "auto" stays fp32.
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve_device(name: str = "auto") -> torch.device:
    """ "auto" -> cuda if available, else cpu; "cuda" without a GPU is a PathMNISTError."""
    if name not in DEVICES:
        raise PathMNISTError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}.")
    if name == "cuda" and not torch.cuda.is_available():
        raise PathMNISTError(
            "device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu or auto."
        )
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def resolve_precision(name: str, device) -> str:
    """ "auto" -> "bf16" where the device has native bf16, else "fp32". An explicit "bf16"
    without native support is kept (autocast emulates it: correct, slow) with a warning."""
    if name not in PRECISIONS:
        raise PathMNISTError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}.")
    device = torch.device(device)
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported(including_emulation=False)  # Ampere or newer.
    else:
        native = cpu_supports_bf16()
    if name == "bf16" and not native:
        warnings.warn(
            f"precision bf16 on {device} without native bf16: autocast emulates it, "
            "usually slower than fp32.",
            UserWarning,
            stacklevel=2,
        )
    return ("bf16" if native else "fp32") if name == "auto" else name


def build_model(config: TrainConfig, num_classes: int) -> nn.Module:
    """The config's ResNet with `num_classes` outputs (initialised from torch's RNG)."""
    return ARCHS[config.arch](num_classes=num_classes, stem=config.stem)


def build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Adam(lr, weight_decay) or SGD(lr, momentum, weight_decay), as the seed."""
    params, c = model.parameters(), config
    if c.optimizer == "sgd":
        return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
    return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)


def _forward(model, x, precision):
    """Logits in float32; the forward runs under bf16 autocast (channels_last) if asked."""
    if precision == "bf16":
        x = x.contiguous(memory_format=torch.channels_last)  # NHWC: bf16 kernels' layout.
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        logits = model(x)  # (B, C), bfloat16 under autocast
    return logits.float()  # Loss and softmax in float32: bf16 keeps only 8 mantissa bits.


def train_one_epoch(model, loader, optimizer, precision="fp32", progress=None):
    """One pass over `loader`, one optimizer step per batch; returns (mean loss, accuracy)
    over the samples seen. `progress` (a tqdm bar or None) advances once per batch."""
    model.train()  # BatchNorm normalises with batch statistics and updates running ones.
    loss_sum, correct, seen = 0.0, 0, 0  # Sums become device tensors: no sync per batch.
    for i, (x, y) in enumerate(loader):  # x (B, 3, H, W) float32, y (B,) int64
        optimizer.zero_grad(set_to_none=True)  # .grad accumulates unless cleared.
        logits = _forward(model, x, precision)  # (B, C)
        loss = criterion(logits, y)  # Scalar: mean cross-entropy of the batch.
        loss.backward()  # d loss / d parameter, into each .grad
        optimizer.step()  # One Adam or SGD update from those gradients.
        loss_sum = loss_sum + loss.detach().double() * len(y)
        correct = correct + (logits.argmax(1) == y).sum()
        seen += len(y)
        if progress is not None:
            progress.update(1)
            if i % 10 == 0 or i == len(loader) - 1:  # .item() waits for a GPU: not always.
                progress.set_postfix(
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


def evaluate(model, loader, precision="fp32") -> Evaluation:
    """Mean loss, accuracy and macro AUC over `loader`, in eval mode without gradients."""
    was_training = model.training
    model.eval()  # BatchNorm uses its running statistics: one answer per image.
    probs, labels, loss_sum = [], [], 0.0
    with torch.no_grad():  # No graph is recorded: less memory and time.
        for x, y in loader:
            logits = _forward(model, x, precision)  # (B, C) float32
            loss_sum = loss_sum + F.cross_entropy(logits, y, reduction="sum").double()
            probs.append(logits.softmax(dim=1).cpu())  # Metrics take probabilities.
            labels.append(y.cpu())
    model.train(was_training)
    if not labels:
        raise PathMNISTError("evaluate got an empty loader; pass a split with images.")
    p, y = torch.cat(probs).numpy(), torch.cat(labels).numpy()  # (N, C), (N,)
    return Evaluation(
        float(loss_sum) / len(y), metrics.accuracy(y, p), metrics.macro_auc(y, p), p, y
    )


def evaluate_imageset(model, imageset, eval_transform, config: TrainConfig) -> Evaluation:
    """`evaluate` on a whole split, on the config's device and precision."""
    device = resolve_device(config.device)
    loader = BatchLoader(
        imageset, EVAL_BATCH_SIZE, shuffle=False, transform=eval_transform, device=device
    )
    return evaluate(model.to(device), loader, resolve_precision(config.precision, device))


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


def fit(
    config: TrainConfig,
    train: ImageSet,
    val: ImageSet,
    out_dir,
    resume: bool = False,
    quiet: bool = False,
) -> History:
    """Train `config` on `train`, validate on `val` after every epoch, write the run files
    into `out_dir`, and return the History with the best weights restored.

    `resume=True` continues from out_dir/last.pt (`config.epochs` may be raised to train
    on); a run that had finished returns its history without training. A resumed run
    ends exactly where an uninterrupted one would, bit for bit on the CPU.
    """
    config.validate()
    _check_splits(train, val)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    sizes = {"train": len(train), "val": len(val)}
    saved = checkpoints.open_run(out_dir, resume, config.to_dict(), train.class_names, sizes)
    mean, std = (saved["mean"], saved["std"]) if saved else channel_stats(train)
    train_tf, eval_tf = build_transforms(mean, std, augment=config.augment, size=config.size)

    checkpoints.seed_everything(config.seed)  # Same seed, same initial weights.
    model = build_model(config, train.num_classes).to(device)
    if precision == "bf16":
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(config, model)
    scheduler = StepLR(optimizer, config.step_size, config.gamma)
    mode = MONITORS[config.monitor]
    stopper = EarlyStopping(config.patience, config.min_delta, mode, monitor=config.monitor)
    rows, stopped = [], False
    if saved:
        rows, stopped = checkpoints.restore(saved, model, optimizer, scheduler, stopper)
    info = {
        "config": config.to_dict(),
        "num_classes": train.num_classes,
        "sizes": sizes,
        "class_names": list(train.class_names),
        "mean": list(mean),
        "std": list(std),
    }
    write_json(Path(out_dir) / "config.json", info)
    History(rows).to_csv(Path(out_dir) / "history.csv")  # A crash may have left it behind.

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
            train_loss, train_acc = train_one_epoch(model, train_loader, optimizer, precision, bar)
        ev = evaluate(model, val_loader, precision)
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
            }
        )
        scheduler.step()  # Once per epoch, after it: sets the next epoch's lr.
        stopped = stopper.step(rows[-1][config.monitor], model)  # Copies the best weights.
        checkpoints.save_epoch(out_dir, info, model, optimizer, scheduler, stopper, rows, stopped)
        if not quiet:  # One line per epoch, printed above the progress bar.
            mark = "  *best*" if stopper.best_epoch == epoch else ""
            tqdm.write(
                f"epoch {epoch}/{config.epochs}: train loss {train_loss:.4f} acc "
                f"{train_acc:.4f} | val loss {ev.loss:.4f} acc {ev.accuracy:.4f} auc "
                f"{ev.macro_auc:.4f} | lr {lr:.1e} | {rows[-1]['seconds']:.1f}s{mark}"
            )
        if stopped:
            break
    if stopped and not quiet:
        tqdm.write(stopper.reason)
    stopper.restore(model)  # The best epoch's weights, not the last epoch's.
    return History(rows, stopper.best_epoch, stopped, model.eval(), eval_tf)
