"""Loading a trained run for inference: its best model, config, eval transform and
class names, from the best.pt that `fit` wrote.

Tested in tests/test_inference.py on a tiny trained run.
"""

import json
from pathlib import Path
from typing import NamedTuple

from torch import nn

from pathmnist.augment.transforms import build_transforms
from pathmnist.config import TrainConfig
from pathmnist.errors import PathMNISTError
from pathmnist.model.registry import build
from pathmnist.training import checkpoints, inference


class Checkpoint(NamedTuple):
    """What `load_checkpoint` returns: a ready model and how to feed it."""

    model: nn.Module  # On the CPU, in eval mode.
    config: TrainConfig
    eval_transform: object  # uint8 (B, H, W, 3) -> normalised float (B, 3, H, W)
    class_names: tuple[str, ...]


def load_checkpoint(path) -> Checkpoint:
    """Rebuild model (CPU, eval mode), config, eval transform and class names from a
    best.pt (or last.pt) that `fit` wrote; PathMNISTError if missing or unreadable."""
    fix = "pass the best.pt (or last.pt) that fit wrote"
    payload = checkpoints.load(path, fix)
    try:
        config = TrainConfig.from_dict(payload["config"])
        model = build(config.arch, num_classes=int(payload["num_classes"]), stem=config.stem)
        model.load_state_dict(payload["model"])
        _, eval_tf = build_transforms(
            payload["mean"], payload["std"], size=config.size, stain=payload.get("stain")
        )
        names = tuple(payload["class_names"])
    except (KeyError, RuntimeError, TypeError) as e:
        raise PathMNISTError(
            f"{path} is a checkpoint but lacks what load_checkpoint needs "
            f"({type(e).__name__}: {str(e)[:80]}); {fix}."
        ) from None
    return Checkpoint(model.eval(), config, eval_tf, names)


def open_run(run_dir) -> inference.Checkpoint:
    """The run's best model (CPU, eval mode), config, eval transform and class names."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PathMNISTError(
            f"there is no run folder at {run_dir}; train one first (examples/03_final_"
            "evaluation.py writes runs/03_final_evaluation) or pass --run DIR."
        )
    return inference.load_checkpoint(run_dir / "best.pt")


def check_data(ckpt: inference.Checkpoint, imageset) -> None:
    """Refuse data whose classes differ from the ones the model was trained on."""
    if tuple(imageset.class_names) != tuple(ckpt.class_names):
        raise PathMNISTError(
            f"the run was trained on {len(ckpt.class_names)} classes {ckpt.class_names[:3]}..., "
            f"but this data has {imageset.num_classes}; pass the data the run used."
        )


def check_trained_on(path, splits: dict, what: str = "the run") -> None:
    """Refuse data other than the data the checkpoint at `path` was trained on: the class
    count, and `checkpoints.data_identity` of each of "train" and "val" in `splits` (a
    model compared or calibrated on other images would report numbers of another data set)."""
    payload = checkpoints.load(path, "pass the best.pt that fit wrote")
    first = next(iter(splits.values()))
    if int(payload.get("num_classes", -1)) != first.num_classes:
        raise PathMNISTError(
            f"{what} ({path}) was trained on {payload.get('num_classes')} classes, but this "
            f"data has {first.num_classes}; pass the data it was trained on."
        )
    saved = payload.get("data") or {}
    for split in ("train", "val"):
        if split in splits and saved.get(split) != checkpoints.data_identity(splits[split]):
            raise PathMNISTError(
                f"{what} ({path}) was trained on another {split} split than this data's; "
                "pass the --dataset, --data-file, --size and --subset it was trained with."
            )


def analysed_checkpoint(run_dir) -> Path:
    """The checkpoint to analyse for a run folder: the model lesson 3 carried, as its
    metrics.json records it ("carried_checkpoint"), else the folder's own best.pt."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.json"
    try:
        recorded = json.loads(path.read_text()).get("carried_checkpoint") if path.exists() else None
    except (ValueError, AttributeError, OSError):
        raise PathMNISTError(
            f"{path} is not a readable metrics.json; rerun the run's example."
        ) from None
    if recorded is None:
        return run_dir / "best.pt"
    if not isinstance(recorded, str) or not Path(recorded).is_file():
        raise PathMNISTError(
            f"{path} says the carried model is {recorded!r}, but there is no such file; run "
            "from the folder lesson 3 ran in, or restore that checkpoint."
        )
    return Path(recorded)
