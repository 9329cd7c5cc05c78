"""The command-line flags every example shares, and the data they select.

Examples are wiring: each builds its parser with `parser()`, turns the flags into data
with `load_data(args)` and into a `TrainConfig` with `config_from_args(args)`, and wraps
its body in `run(main)`, which turns a `PathMNISTError` into `error: <sentence>` and exit
status 2 (no traceback: the sentence already says what to fix). The choices come from
`pathmnist.config`, so a new optimizer or device is added in one place.

Tested in tests/test_cli.py and tests/test_bad_inputs.py.
"""

import argparse
import dataclasses
import sys
from pathlib import Path

from pathmnist import config as C
from pathmnist.data import dataset as data
from pathmnist.data import synthetic
from pathmnist.errors import PathMNISTError
from pathmnist.training import ddp, rundir


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
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "augment",
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


def check_run_flags(args, out, resume_file: str = "last.pt") -> Path:
    """Refuse --out, --resume and --overwrite combinations before any data is loaded."""
    return rundir.check_start(out, args.resume, args.overwrite, resume_file)


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
    try:
        main()
    except PathMNISTError as e:
        if ddp.is_main():
            print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("\ninterrupted: rerun the same command with --resume to continue.", file=sys.stderr)
        sys.exit(130)
    except Exception as e:
        if not ddp.is_peer_failure(e):
            raise
        ddp.stop()  # Not sys.exit: leaving a broken group could block.
    finally:
        ddp.teardown()
