"""The command-line flags every example shares, and the data they select.

Examples are wiring: each builds its parser with `parser()`, turns the flags into data
with `load_data(args)` and into a `TrainConfig` with `config_from_args(args)`, and wraps
its body in `run(main)`, which turns a `PathMNISTError` into `error: <sentence>` and exit
status 2 (no traceback: the sentence already says what to fix). The choices come from
`pathmnist.config`, so a new optimizer or device is added in one place.

Ctrl-C is one line and exit status 130 wherever it lands, the imports included (this
module installs a SIGINT handler before it imports torch and medmnist, whose package
import would swallow a KeyboardInterrupt); it advises --resume only when a run folder was
started.

Tested in tests/test_cli.py, tests/test_bad_inputs.py and tests/test_faults.py.
"""

import argparse
import dataclasses
import os
import signal
import sys
from pathlib import Path


def _interrupted_while_importing(signum, frame):
    """Ctrl-C while the example imports torch and medmnist: one line, status 130. A signal
    handler, not an exception hook: medmnist's package import catches every exception,
    KeyboardInterrupt included, and would swallow the interrupt. `run` puts Python's own
    handler back once the imports are done."""
    print("\ninterrupted before anything was written; rerun the same command.", file=sys.stderr)
    sys.stderr.flush()
    os._exit(130)


# Only for a script run in a terminal (a notebook has its own excepthook and handler).
_GUARDED = sys.excepthook is sys.__excepthook__ and (
    signal.getsignal(signal.SIGINT) is signal.default_int_handler
)
if _GUARDED:
    signal.signal(signal.SIGINT, _interrupted_while_importing)

from pathmnist import config as C  # noqa: E402 - after the hook: this imports torch.
from pathmnist.data import dataset as data  # noqa: E402
from pathmnist.data import synthetic  # noqa: E402
from pathmnist.device import resolve_device  # noqa: E402
from pathmnist.errors import PathMNISTError  # noqa: E402
from pathmnist.model.resnet import MIN_SIZE, TOTAL_STRIDE  # noqa: E402
from pathmnist.training import ddp, rundir  # noqa: E402


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one PathMNISTError sentence, not a usage block."""

    def error(self, message):
        raise PathMNISTError(f"{message} (see --help)")


def _choices(values) -> str:
    return "{" + ",".join(values) + "}"


def _path(text: str) -> Path:
    """A path flag's value; "" is refused, since Path("") is the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the path is empty; give a file or folder name")
    return Path(text)


def parser(description: str) -> argparse.ArgumentParser:
    """An argparse parser with the flags of design.md; training flags default to None,
    meaning "keep the TrainConfig (or best_config.json) value"."""
    p = _Parser(description=description)
    d = p.add_argument_group("data")
    d.add_argument(
        "--dataset",
        choices=["pathmnist", "synthetic"],
        default="pathmnist",
        help="the real PathMNIST (downloaded once into --data-root) or the offline "
        "synthetic stand-in (default: pathmnist)",
    )
    d.add_argument("--data-file", type=_path, help="any MedMNIST-format npz; overrides --dataset")
    d.add_argument(
        "--data-root",
        type=_path,
        default=None,
        help="folder for downloads and the synthetic cache (default ~/.medmnist)",
    )
    d.add_argument(
        "--size",
        type=int,
        choices=list(data.SIZES),
        default=64,
        help="image size of the PathMNIST file to use (default 64)",
    )
    d.add_argument(
        "--subset",
        type=float,
        default=None,
        metavar="FRACTION",
        help="train on a stratified fraction of the training split, in (0, 1]",
    )
    t = p.add_argument_group("training (default: the seed's baseline, TrainConfig)")
    t.add_argument("--arch", choices=list(C.ARCHS))
    t.add_argument("--stem", choices=list(C.STEMS))
    t.add_argument(
        "--weights",
        metavar="{imagenet,FILE}",
        help="start from torchvision's ImageNet weights or a state dict file (the head is "
        "replaced; inputs get ImageNet's mean and std); default: random weights",
    )
    t.add_argument(
        "--freeze-epochs",
        type=int,
        metavar="N",
        help="with --weights: train only the new head for the first N epochs",
    )
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--optimizer", choices=list(C.OPTIMIZERS))
    t.add_argument(
        "--augment",
        metavar="NAMES",
        help=f"comma-separated batch augmentations from {_choices(C.AUGMENTATIONS)}, "
        "e.g. flips,hed-light; 'none' for none (the seed's choice)",
    )
    t.add_argument("--randaugment-n", type=int, metavar="N", help="RandAugment: ops per image (2)")
    t.add_argument(
        "--randaugment-m", type=int, metavar="M", help="RandAugment: magnitude 0..30 (9)"
    )
    t.add_argument(
        "--stain-normalize",
        action="store_true",
        default=None,
        help="Macenko stain normalisation to the training split's stain",
    )
    t.add_argument("--loss", choices=list(C.LOSSES))
    t.add_argument("--label-smoothing", type=float)
    t.add_argument("--focal-gamma", type=float)
    t.add_argument("--mixup", type=float, metavar="ALPHA", help="MixUp with Beta(ALPHA, ALPHA)")
    t.add_argument("--cutmix", type=float, metavar="ALPHA", help="CutMix with Beta(ALPHA, ALPHA)")
    t.add_argument(
        "--tta",
        action="store_true",
        default=None,
        help="evaluate with the mean over the 8 flips and rotations of each image",
    )
    t.add_argument("--device", choices=list(C.DEVICES))
    t.add_argument("--precision", choices=list(C.PRECISIONS))
    t.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="torch.compile the model (slower first batch, faster steps on a GPU)",
    )
    t.add_argument(
        "--deterministic",
        action="store_true",
        default=None,
        help="deterministic GPU kernels (slower; the CPU always is)",
    )
    t.add_argument("--seed", type=int)
    r = p.add_argument_group("run")
    r.add_argument("--out", type=_path, help="run directory (default runs/<example name>)")
    r.add_argument("--resume", action="store_true", help="continue the run in --out")
    r.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in --out (removes only the files this package wrote)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


# Flags whose value replaces the TrainConfig field of the same name when given.
CONFIG_FLAGS = (
    "arch",
    "stem",
    "weights",
    "freeze_epochs",
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "augment",
    "randaugment_n",
    "randaugment_m",
    "stain_normalize",
    "loss",
    "label_smoothing",
    "focal_gamma",
    "mixup",
    "cutmix",
    "tta",
    "device",
    "precision",
    "compile",
    "deterministic",
    "seed",
)


def config_from_args(args, base: C.TrainConfig | None = None) -> C.TrainConfig:
    """`base` (default the seed's baseline) with every training flag the user gave."""
    changes = {k: getattr(args, k) for k in CONFIG_FLAGS if getattr(args, k, None) is not None}
    if "augment" in changes:
        changes["augment"] = C.parse_augment(changes["augment"])
    config = dataclasses.replace(base or C.TrainConfig(), **changes)
    return config.validate()


def check_run_flags(args, out, resume_file: str | None = None, kind: str | None = None) -> Path:
    """Refuse --out, --resume and --overwrite combinations before any data is loaded (the
    example's `rundir.hold` checks again once it holds the folder)."""
    return rundir.check_start(out, args.resume, args.overwrite, resume_file, kind)


def check_training(config: C.TrainConfig, train, val=None) -> None:
    """Refuse, before a run folder exists, what training would refuse later: the device,
    images smaller than the model's stem takes, a batch of one image where layer4's map is
    1x1 (train-mode BatchNorm needs two values per channel)."""
    config.validate()
    resolve_device(config.device)
    size = config.size or train.image_size
    if size < MIN_SIZE[config.stem]:
        raise PathMNISTError(
            f"images of {size}x{size} are smaller than the {config.stem} stem takes "
            f"({MIN_SIZE[config.stem]}x{MIN_SIZE[config.stem]}); use --stem small or larger images."
        )
    if config.batch_size == 1 and -(-size // TOTAL_STRIDE[config.stem]) == 1:
        raise PathMNISTError(
            f"--batch-size 1 with {size}x{size} images leaves layer4's BatchNorm one value per "
            "channel; use --batch-size 2 or more."
        )


def load_data(args, splits=("train", "val", "test")) -> dict:
    """The splits the flags select, as ImageSets: --data-file, else --dataset.

    `--dataset synthetic` makes (once, then reuses) a synthetic PathMNIST of
    `synthetic.DEFAULT_SIZES` images in the data root. `--subset` keeps a stratified
    fraction of the training split (seeded by --seed, or 0).
    """
    root = args.data_root
    if root is not None and root.exists() and not root.is_dir():
        raise PathMNISTError(f"--data-root {root} is a file; give a folder.")
    if args.data_file is not None:
        loaded = {s: data.load_split(s, data_file=args.data_file) for s in splits}
    elif args.dataset == "synthetic":
        path = synthetic.ensure_synthetic(root or data.default_root(), size=args.size)
        loaded = {s: data.load_split(s, data_file=path) for s in splits}
    else:
        loaded = {s: data.load_split(s, root=root, size=args.size) for s in splits}
    data.check_same_size(loaded)
    if args.subset is not None and "train" in loaded:
        loaded["train"] = data.stratified_subset(loaded["train"], args.subset, seed=args.seed or 0)
    return loaded


def data_description(args) -> str:
    """Which data the flags select, in words (for reports and for search keys)."""
    if args.data_file is not None:
        return str(Path(args.data_file).resolve())
    return f"{args.dataset} size {args.size}"


def run(main) -> None:
    """Call `main()`; a user error prints `error: <sentence>` and exits with status 2.

    Under torchrun every rank meets the same error and only rank 0 prints it; a peer that
    died (or hung past ddp.TIMEOUT) ends this rank with one line and status 1."""
    if _GUARDED:  # The imports are done: Ctrl-C is a KeyboardInterrupt again.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    rundir.STARTED.clear()
    try:
        main()
    except PathMNISTError as e:
        if ddp.is_main():
            print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        if rundir.STARTED:
            how = "rerun the same command with --resume (not --overwrite) to continue"
        else:
            how = "nothing was written yet; rerun the same command"
        print(f"\ninterrupted: {how}.", file=sys.stderr)
        sys.exit(130)
    except Exception as e:
        if not ddp.is_peer_failure(e):
            raise
        ddp.stop()  # Not sys.exit: leaving a broken group could block.
    finally:
        ddp.teardown()
