"""The command-line flags every example shares, and the data they select.

Examples are wiring: each builds its parser with `parser()`, turns the flags into data
with `load_data(args)` and into a `TrainConfig` with `config_from_args(args)`, and wraps
its body in `run(main)`, which turns a `PathMNISTError` into `error: <sentence>` and
exit status 2 (no traceback: the sentence already says what to fix).

Tested in tests/test_cli.py (flag parsing, data selection, errors).
"""

import argparse
import dataclasses
import sys
from pathlib import Path

from pathmnist import data, synthetic
from pathmnist.errors import PathMNISTError
from pathmnist.training import TrainConfig


def parser(description: str) -> argparse.ArgumentParser:
    """An argparse parser with the flags of design.md; training flags default to None,
    meaning "keep the TrainConfig (or best_config.json) value"."""
    p = argparse.ArgumentParser(description=description)
    d = p.add_argument_group("data")
    d.add_argument(
        "--dataset",
        choices=["pathmnist", "synthetic"],
        default="pathmnist",
        help="the real PathMNIST (downloaded once into --data-root) or the "
        "offline synthetic stand-in (default: pathmnist)",
    )
    d.add_argument("--data-file", type=Path, help="any MedMNIST-format npz; overrides --dataset")
    d.add_argument(
        "--data-root",
        type=Path,
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
    t.add_argument("--arch", choices=["resnet18", "resnet34", "resnet50"])
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--optimizer", choices=["adam", "sgd"])
    t.add_argument(
        "--augment",
        action="store_true",
        default=None,
        help="random flips and 90-degree rotations of the training batches",
    )
    t.add_argument("--device", choices=["auto", "cpu", "cuda"])
    t.add_argument("--precision", choices=["auto", "fp32", "bf16"])
    t.add_argument("--seed", type=int)
    r = p.add_argument_group("run")
    r.add_argument("--out", type=Path, help="run directory (default runs/<example name>)")
    r.add_argument("--resume", action="store_true", help="continue the run in --out")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


# Flags whose value replaces the TrainConfig field of the same name when given.
CONFIG_FLAGS = (
    "arch",
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "augment",
    "device",
    "precision",
    "seed",
)


def config_from_args(args, base: TrainConfig | None = None) -> TrainConfig:
    """`base` (default the seed's baseline) with every training flag the user gave."""
    changes = {k: getattr(args, k) for k in CONFIG_FLAGS if getattr(args, k) is not None}
    config = dataclasses.replace(base or TrainConfig(), **changes)
    config.validate()
    return config


def load_data(args, splits=("train", "val", "test")) -> dict:
    """The splits the flags select, as ImageSets: --data-file, else --dataset.

    `--dataset synthetic` makes (once, then reuses) a synthetic PathMNIST of
    `synthetic.DEFAULT_SIZES` images in the data root. `--subset` keeps a stratified
    fraction of the training split (seeded by --seed, or 0).
    """
    if args.data_file is not None:
        loaded = {s: data.load_split(s, data_file=args.data_file) for s in splits}
    elif args.dataset == "synthetic":
        root = args.data_root or data.default_root()
        path = synthetic.ensure_synthetic(root, size=args.size)
        loaded = {s: data.load_split(s, data_file=path) for s in splits}
    else:
        loaded = {s: data.load_split(s, root=args.data_root, size=args.size) for s in splits}
    if args.subset is not None and "train" in loaded:
        loaded["train"] = data.stratified_subset(loaded["train"], args.subset, seed=args.seed or 0)
    return loaded


def run(main) -> None:
    """Call `main()`; a user error prints `error: <sentence>` and exits with status 2."""
    try:
        main()
    except PathMNISTError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("\ninterrupted: rerun the same command with --resume to continue.", file=sys.stderr)
        sys.exit(130)
