"""`fit`: train a `config.TrainConfig` on a training split, validate after every epoch,
and write the run folder (config.json, history.csv, last.pt, best.pt).

The seed project's recipe written out with plain torch: cross-entropy loss, Adam (or SGD)
with weight decay, `schedulers.StepLR` stepped once per epoch, `early_stopping.EarlyStopping`
on the validation loss with the best weights restored. Device and precision are resolved
once, here, and passed to every piece; `--compile` compiles the model's feature extractor
once and passes the compiled callable to the loop. With `distributed=True` in a process
that torchrun started, the ranks train one model with DistributedDataParallel
(`training.ddp`): rank 0 prepares and writes the run, every rank takes its shard of each
global batch, and the history equals one process's with the same global batch.

Tested in tests/test_fit.py on tiny synthetic sets: the same seed gives the same history,
a resumed run ends with bit-identical weights to an uninterrupted one, early stopping
restores the best weights, and every user error is a PathMNISTError; the data-parallel
path in tests/test_ddp.py.
"""

import contextlib
import functools
import math
import time

import torch
from tqdm.auto import tqdm

from pathmnist.augment import mixing
from pathmnist.augment.transforms import build_transforms
from pathmnist.config import MONITORS, TrainConfig, seed_everything
from pathmnist.data.dataset import ImageSet
from pathmnist.data.loader import BatchLoader
from pathmnist.device import configure_backends, memory_format, resolve_device, resolve_precision
from pathmnist.errors import PathMNISTError
from pathmnist.files import write_json
from pathmnist.model import losses, pretrained, syncbn
from pathmnist.model.registry import build
from pathmnist.training import ddp, loop, resume, rundir
from pathmnist.training.early_stopping import EarlyStopping
from pathmnist.training.history import History, format_epoch
from pathmnist.training.prepare import build_optimizer, check_splits, prepare
from pathmnist.training.schedulers import StepLR


def _diverged(split, loss, epoch, lr, rows) -> PathMNISTError:
    """The sentence for a loss that became NaN or infinite; the run files stay as the last
    finished epoch wrote them."""
    kept = f"best.pt and history.csv keep epoch {len(rows)}" if rows else "no epoch ended"
    return PathMNISTError(
        f"the {split} loss became {loss} in epoch {epoch}: the learning rate {lr:g} is likely "
        f"too high; lower --lr ({kept})."
    )


def fit(
    config: TrainConfig,
    train: ImageSet,
    val: ImageSet,
    out_dir,
    resume: bool = False,
    quiet: bool = False,
    overwrite: bool = False,
    on_epoch=None,
    timers=None,
    distributed: bool = False,
) -> History:
    """Train `config` on `train`, validate on `val` after every epoch, write the run files
    into `out_dir`, and return the History with the best weights restored.

    A folder holding an earlier run is refused unless `resume=True` (continue it: the same
    settings, but `config.epochs` may be raised, and the same data) or `overwrite=True`
    (replace it). A resumed run ends exactly where an uninterrupted one would, bit for bit
    on the CPU. A NaN or infinite training loss stops the run with a PathMNISTError,
    leaving best.pt and history.csv as the last good epoch wrote them.

    `on_epoch(row)`, if given, is called with each epoch's history row once the epoch is
    saved; a tuner reports the row there and may end the run by raising (Optuna's pruning).
    `timers` (a `loop.Timers`, opt-in) sums the seconds of each epoch and of its forward,
    backward and optimizer work ("epoch", "compute"), so a benchmark can tell what else an
    epoch costs.

    `distributed=True` under torchrun (`ddp.setup()` first): data-parallel training over
    the ranks, `config.batch_size` being the global batch; only rank 0 writes and prints,
    and a resume needs the same number of processes. In a plain run it changes nothing.
    """
    config.validate()
    check_splits(train, val)
    if config.weights is not None and not resume:  # A bad weights file: before any file.
        build(config.arch, config.weights, num_classes=train.num_classes, stem=config.stem)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    parallel = distributed and ddp.world_size() > 1
    if parallel:
        ddp.check_batch(config.batch_size)
    with contextlib.ExitStack() as held:

        def start():  # Rank 0 only, under torchrun; its refusal reaches every rank.
            out = held.enter_context(rundir.lock(out_dir))
            info, saved = prepare(config, train, val, out, resume, overwrite)
            ddp.check_resume(saved, out)
            info["run"] = rundir.run_id(out)  # Every checkpoint and config.json name their run.
            if parallel:
                info["world_size"] = ddp.world_size()  # A resume needs as many processes.
            return out, info, saved

        out, info, saved = ddp.from_main(start) if parallel else start()
        quiet = quiet or (parallel and not ddp.is_main())
        hooks = {"on_epoch": on_epoch, "timers": timers, "parallel": parallel}
        return _train(config, train, val, out, info, saved, device, precision, quiet, **hooks)


def _train(
    config, train, val, out_dir, info, saved, device, precision, quiet, on_epoch, timers, parallel
):
    train_tf, eval_tf = build_transforms(
        info["mean"],
        info["std"],
        config.augment,
        config.size,
        info["stain"],
        (config.randaugment_n, config.randaugment_m),
        info["randstain"],
    )
    configure_backends(device, config.deterministic)
    seed_everything(config.seed)  # Same seed, same initial weights.
    weights = None if saved else config.weights  # A resumed run restores its own weights.
    model = build(config.arch, weights, num_classes=train.num_classes, stem=config.stem)
    if parallel:  # BatchNorm statistics over the global batch, as one process has them.
        model = syncbn.convert_sync_batchnorm(model, device)
    # NHWC (channels_last) weights for bf16, the layout its convolution kernels want; NCHW
    # for fp32. A resume may change the precision: resume.restore matches the optimizer's
    # state to the parameters' layout.
    model = model.to(device).to(memory_format=memory_format(precision))
    optimizer = build_optimizer(config, model)
    scheduler = StepLR(optimizer, config.step_size, config.gamma)
    stopper = EarlyStopping(
        config.patience, config.min_delta, MONITORS[config.monitor], monitor=config.monitor
    )
    rows, stopped = [], False
    # The process that writes this run: rank 0 of a data-parallel one; any process of its
    # own (one trial of a search shared out over torchrun's ranks included).
    main = not parallel or ddp.is_main()
    if saved:
        rows, stopped = resume.restore(
            out_dir, saved, model, optimizer, scheduler, stopper, best=main
        )
    # --compile: the feature extractor compiled once, passed to the loop (the weights stay
    # the same tensors, so checkpoints and the returned model need no unwrapping).
    features = torch.compile(model.features) if config.compile else None
    dp = {}  # Passed only when parallel, so a learner's train_one_epoch need not take it.
    if parallel:  # The forward through DDP, so that backward averages the gradients.
        step = functools.partial(loop.forward, precision=precision, features=features)
        dp["replica"] = ddp.wrap(model, step, device)
    if main:
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
            shard=ddp.Shard(ddp.rank(), ddp.world_size()) if parallel else None,
        )
        if parallel:  # Each rank evaluates its shard; all of them get the whole split's.
            evaluate = functools.partial(
                ddp.evaluate, imageset=val, transform=eval_tf, device=device
            )
        else:
            val_loader = BatchLoader(
                val, loop.EVAL_BATCH_SIZE, shuffle=False, transform=eval_tf, device=device
            )
            evaluate = functools.partial(loop.evaluate, loader=val_loader)
    # Only when asked: a learner's own train_one_epoch (docs/exercises) need not take timers
    # or the DDP replica.
    timed = {"timers": timers} if timers is not None else {}
    for epoch in todo:
        start, lr = time.perf_counter(), optimizer.param_groups[0]["lr"]
        train_loader.set_epoch(epoch)  # (seed, epoch) fixes this epoch's order and draws.
        if config.freeze_epochs:  # Warm-up: only the new head learns in the first epochs.
            pretrained.freeze_backbone(model, epoch <= config.freeze_epochs)
        # disable=None: tqdm shows the bar only on a terminal.
        with tqdm(
            total=len(train_loader),
            desc=f"epoch {epoch}/{config.epochs}",
            leave=False,
            unit="batch",
            disable=True if quiet else None,
        ) as bar:
            train_loss, train_acc = loop.train_one_epoch(
                model,
                train_loader,
                optimizer,
                precision,
                bar,
                loss_fn,
                mix,
                features,
                **timed,
                **dp,
            )
        if not math.isfinite(train_loss):
            raise _diverged("training", train_loss, epoch, lr, rows)
        ev = evaluate(model=model, precision=precision, tta=config.tta, features=features, **timed)
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
        if main:
            resume.save_epoch(out_dir, info, model, optimizer, scheduler, stopper, rows, stopped)
        if timers is not None:
            timers.seconds["epoch"] = timers.seconds.get("epoch", 0.0) + (
                time.perf_counter() - start
            )
        if not quiet:  # One line per epoch, printed above the progress bar.
            tqdm.write(format_epoch(rows[-1], config.epochs, stopper.best_epoch == epoch))
        if on_epoch is not None:
            on_epoch(dict(rows[-1]))
        if stopped:
            break
    if stopped and not quiet:
        tqdm.write(stopper.reason)
    stopper.restore(model)  # The best epoch's weights, not the last epoch's.
    predictor = loop.Predictor(model.eval(), eval_tf, device, precision, config.tta)
    return History(rows, stopper.best_epoch, stopped, model, eval_tf, predictor)
