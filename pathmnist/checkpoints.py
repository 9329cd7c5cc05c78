"""What a training run is and what it leaves on disk: its settings (TrainConfig), its
per-epoch record (History, history.csv) and its checkpoints (last.pt, best.pt: atomic
save, safe load, the random-number state a resume needs, the resume checks), and
`load_checkpoint` to get a model back. `pathmnist.training` re-exports all of these.

A checkpoint is a plain dict of tensors, numbers, strings, lists, tuples and dicts, so
it loads with `torch.load(weights_only=True)`, which unpickles only those types (since
torch 2.6 the default: a checkpoint from elsewhere cannot run code on load). That rules
out numpy arrays and dataclasses, so the config travels as a dict and numpy's RNG state
as lists. Files are written atomically (temporary file in the same folder, then
`os.replace`, via `pathmnist.io.atomic_path`): a crash mid-save leaves the previous
checkpoint intact.

Why save RNG states at all? The batch order and augmentation of epoch e come from the
loader's own generator seeded with (seed, epoch), so they need no saved state; but
anything else that draws from the global generators (dropout, a user's transform) would
diverge after a resume without them. Saving torch's CPU and CUDA states, numpy's and
Python's keeps a resumed run bit-identical to an uninterrupted one on the same machine.

A resume must continue the same experiment: `open_run` compares the saved config with
the new one field by field; only the fields in RESUME_MAY_CHANGE (the number of epochs,
the device, the precision) may differ, and the data must have the same classes and sizes.

Tested in tests/test_training.py (round trip through weights_only, corrupt and missing
files, resume refusals, resume bit-identical to an uninterrupted run, history.csv).
"""

import dataclasses
import json
import math
import pickle
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from pathmnist.errors import PathMNISTError
from pathmnist.io import atomic_path, write_text
from pathmnist.resnet import ARCHS, STEMS
from pathmnist.transforms import build_transforms

FORMAT = "pathmnist-checkpoint-1"  # Bumped when the layout of the dict changes.
HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_auc")
HISTORY_COLUMNS += ("lr", "seconds")  # lr used during the epoch; wall-clock seconds.
# Fields a resume may change: how long to train and where/how to compute. Any other change
# would make the resumed run a different experiment from the one saved in last.pt.
RESUME_MAY_CHANGE = ("epochs", "device", "precision")
# What EarlyStopping may monitor, with its mode: a loss falls, an accuracy or AUC rises.
MONITORS = {"val_loss": "min", "val_acc": "max", "val_auc": "max"}
OPTIMIZERS = ("adam", "sgd")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class TrainConfig:
    """One training run's settings; the defaults are the seed project's baseline."""

    arch: str = "resnet18"  # The seed's model (resnet.ARCHS lists the others).
    stem: str = "imagenet"  # The seed used torchvision's stem (7x7/2 conv + max-pool).
    optimizer: str = "adam"  # The seed's baseline; its grid also tried "sgd".
    lr: float = 1e-3  # Seed baseline, confirmed best by its grid search.
    momentum: float = 0.9  # SGD only: the usual heavy-ball value, as the seed's SGD runs.
    batch_size: int = 128  # Seed baseline (its grid search preferred 64, by a hair).
    epochs: int = 10  # Seed baseline.
    weight_decay: float = 1e-4  # Seed: an L2 penalty passed to the optimizer.
    step_size: int = 5  # Seed: StepLR(step_size=5, gamma=0.1), lr / 10 after epoch 5.
    gamma: float = 0.1  # Seed, as above.
    patience: int = 3  # Seed: stop after 3 epochs without improvement.
    min_delta: float = 0.0  # Keras's default: any improvement counts.
    monitor: str = "val_loss"  # Seed: the validation loss (mode min).
    augment: bool = False  # The seed trained without augmentation.
    size: int | None = None  # Resize to size x size; None keeps the data's (seed: 64).
    seed: int = 0  # Fixes initial weights, batch order and augmentation.
    device: str = "auto"  # CUDA when present, else the CPU.
    precision: str = "auto"  # bf16 where the hardware has it natively, else fp32.

    def validate(self) -> "TrainConfig":
        """Raise PathMNISTError naming the first bad field; return self if all are fine."""

        def whole(v, low):
            return isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= low

        def real(v, low, high=math.inf):
            ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            return ok and low <= v < high

        rules = [
            (name, getattr(self, name) in allowed, f"choose one of {', '.join(allowed)}")
            for name, allowed in (
                ("arch", tuple(ARCHS)),
                ("stem", STEMS),
                ("optimizer", OPTIMIZERS),
                ("monitor", tuple(MONITORS)),
                ("device", DEVICES),
                ("precision", PRECISIONS),
            )
        ]
        rules += [
            (name, whole(getattr(self, name), low), f"use a whole number >= {low}")
            for name, low in (
                ("batch_size", 1),
                ("epochs", 1),
                ("step_size", 1),
                ("patience", 0),
                ("seed", 0),
            )
        ]
        rules += [
            ("size", self.size is None or whole(self.size, 1), "use None or an int >= 1"),
            ("lr", real(self.lr, 0) and self.lr > 0, "use a finite number > 0, e.g. 1e-3"),
            ("gamma", real(self.gamma, 0) and self.gamma > 0, "use a number > 0, e.g. 0.1"),
            ("momentum", real(self.momentum, 0, 1), "use a number in [0, 1), e.g. 0.9"),
            ("weight_decay", real(self.weight_decay, 0), "use a finite number >= 0"),
            ("min_delta", real(self.min_delta, 0), "use a finite number >= 0"),
            ("augment", isinstance(self.augment, bool), "use True or False"),
        ]
        for name, ok, fix in rules:
            if not ok:
                raise PathMNISTError(
                    f"TrainConfig {name}={getattr(self, name)!r} is not allowed; {fix}."
                )
        return self

    def to_dict(self) -> dict:
        """The fields as a plain dict (JSON- and weights_only-safe)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Build and validate a config; missing fields keep their defaults."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise PathMNISTError(
                f"unknown TrainConfig field(s) {', '.join(unknown)}; use only {', '.join(names)}."
            )
        return cls(**d).validate()

    @classmethod
    def from_json(cls, path) -> "TrainConfig":
        """Read a config from JSON: a bare config object (best_config.json) or a run's
        config.json (whose "config" key holds it)."""
        try:
            d = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise PathMNISTError(
                f"there is no config file at {path}; write it first "
                "(examples/02_tuning.py writes best_config.json)."
            ) from None
        except (OSError, ValueError) as e:
            raise PathMNISTError(f"{path} is not a readable JSON config ({e}); fix it.") from None
        d = d["config"] if isinstance(d, dict) and isinstance(d.get("config"), dict) else d
        if not isinstance(d, dict):
            raise PathMNISTError(f"{path} holds a {type(d).__name__}, not a config object.")
        return cls.from_dict(d)


def save(payload: dict, path) -> Path:
    """Write `payload` (plus the FORMAT tag) to `path` with torch.save, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)
    return path


def load(path, fix: str = "train again without --resume") -> dict:
    """Read a checkpoint onto the CPU with weights_only=True; PathMNISTError if missing,
    unreadable or not written by `save` (the message ends with `fix`)."""
    path = Path(path)
    if not path.is_file():
        raise PathMNISTError(f"there is no checkpoint at {path}; {fix}.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise PathMNISTError(
            f"{path} is not a readable checkpoint ({reason}); it may be truncated or from "
            f"another program: {fix}."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise PathMNISTError(
            f"{path} is a torch file but not a pathmnist checkpoint (format "
            f"{payload.get('format') if isinstance(payload, dict) else type(payload).__name__!r}"
            f", expected {FORMAT!r}); {fix}."
        )
    return payload


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and every CUDA device), numpy's global generator and Python's."""
    torch.manual_seed(seed)  # Also seeds all CUDA devices.
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy seed fits 32 bits.
    random.seed(seed)


def rng_state() -> dict:
    """Every global generator's state as weights_only-loadable values."""
    # numpy's global generator: {"state": {"key": uint32 (624,), "pos": int}, ...}
    np_state = np.random.get_state(legacy=False)  # noqa: NPY002 - it is the one we save.
    return {
        "torch": torch.get_rng_state(),  # uint8 tensor
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": np_state["state"]["key"].tolist(),  # A plain list: no numpy in the file.
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": random.getstate(),  # (version, tuple of 625 ints, gauss or None)
    }


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state()` captured (CUDA states only if the device count matches)."""
    torch.set_rng_state(state["torch"])
    cuda = state["cuda"]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002 - the global generator is what we restore.
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": np.asarray(n["key"], dtype=np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def open_run(out_dir, resume: bool, config: dict, class_names, sizes: dict) -> dict | None:
    """Start the run in `out_dir`: with resume, return last.pt after checking that it is
    the same experiment; without, delete an earlier run's checkpoints and history, so
    the folder never mixes two runs, and return None."""
    out_dir = Path(out_dir)
    if not resume:
        for name in ("last.pt", "best.pt", "history.csv"):
            (out_dir / name).unlink(missing_ok=True)
        return None
    if not (out_dir / "last.pt").exists():
        raise PathMNISTError(
            f"there is nothing to resume in {out_dir} (no last.pt); drop --resume to start anew."
        )
    saved = load(out_dir / "last.pt", "drop --resume to start a new run")
    for key, value in config.items():
        old = saved["config"].get(key)
        if key not in RESUME_MAY_CHANGE and old != value:
            raise PathMNISTError(
                f"cannot resume {out_dir}: its run used {key}={old!r} but this one asks for "
                f"{key}={value!r}; use the same {key}, or train in a new folder without --resume."
            )
    if tuple(saved["class_names"]) != tuple(class_names) or saved["sizes"] != sizes:
        raise PathMNISTError(
            f"cannot resume {out_dir}: its run had {saved['sizes']} images of classes "
            f"{tuple(saved['class_names'])}; this data differs: use the same data, or drop "
            "--resume."
        )
    return saved


def save_epoch(out_dir, info: dict, model, optimizer, scheduler, stopper, rows, stopped) -> None:
    """After an epoch: best.pt if it was the best so far, then last.pt and history.csv."""
    out_dir = Path(out_dir)
    epoch = rows[-1]["epoch"]
    if stopper.best_epoch == epoch:  # Model, config and normalisation: load_checkpoint's needs.
        save({**info, "model": model.state_dict(), "epoch": epoch}, out_dir / "best.pt")
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),  # Adam's moments (or SGD's momentum buffers).
        "scheduler": scheduler.state_dict(),
        "early_stopping": stopper.state_dict(),  # Counters and a copy of the best weights.
        "rng": rng_state(),
        "rows": rows,
        "stopped_early": stopped,
        "epoch": epoch,
    }
    save({**info, **state}, out_dir / "last.pt")
    History(rows).to_csv(out_dir / "history.csv")


def restore(saved: dict, model, optimizer, scheduler, stopper) -> tuple[list[dict], bool]:
    """Load last.pt's states into fresh objects; return its (rows, stopped_early)."""
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    stopper.load_state_dict(saved["early_stopping"])
    set_rng_state(saved["rng"])
    return list(saved["rows"]), bool(saved["stopped_early"])


@dataclass
class History:
    """What `fit` returns: per-epoch rows, the best epoch and the best model."""

    rows: list[dict]  # One dict per epoch with the keys HISTORY_COLUMNS.
    best_epoch: int = 0  # 1-based; 0 if no epoch had a finite monitored value.
    stopped_early: bool = False
    model: nn.Module | None = None  # Best weights restored, in eval mode.
    eval_transform: object = None  # Normalises (and resizes) other splits as val.

    def to_csv(self, path) -> Path:
        """Write the rows as CSV atomically; repr of a float round-trips exactly."""
        lines = [",".join(HISTORY_COLUMNS)]
        for r in self.rows:
            values = [str(int(r["epoch"]))] + [repr(float(r[c])) for c in HISTORY_COLUMNS[1:]]
            lines.append(",".join(values))
        return write_text(path, "\n".join(lines) + "\n")

    @classmethod
    def from_csv(cls, path, monitor: str = "val_loss") -> "History":
        """Read a history.csv; best_epoch is the first epoch with the best `monitor`."""
        lines = Path(path).read_text().split()
        if not lines or tuple(lines[0].split(",")) != HISTORY_COLUMNS:
            raise PathMNISTError(
                f"{path} is not a history.csv: its header should be {','.join(HISTORY_COLUMNS)}."
            )
        rows = []
        for line in lines[1:]:
            row = dict(zip(HISTORY_COLUMNS, map(float, line.split(",")), strict=True))
            rows.append({**row, "epoch": int(row["epoch"])})
        sign = 1 if MONITORS[monitor] == "min" else -1
        best = min(rows, key=lambda r: sign * r[monitor])["epoch"] if rows else 0
        return cls(rows, best_epoch=best)


class Checkpoint(NamedTuple):
    """What `load_checkpoint` returns: a ready model and how to feed it."""

    model: nn.Module  # On the CPU, in eval mode.
    config: TrainConfig
    eval_transform: object  # uint8 (B, H, W, 3) -> normalised float (B, 3, H, W)
    class_names: tuple[str, ...]


def load_checkpoint(path) -> Checkpoint:
    """Rebuild model (CPU, eval mode), config, eval transform and class names from a
    best.pt (or last.pt) that `fit` wrote; PathMNISTError if missing or unreadable."""
    fix = "pass the best.pt (or last.pt) that training.fit wrote"
    payload = load(path, fix)
    try:
        config = TrainConfig.from_dict(payload["config"])
        model = ARCHS[config.arch](num_classes=int(payload["num_classes"]), stem=config.stem)
        model.load_state_dict(payload["model"])
        _, eval_tf = build_transforms(payload["mean"], payload["std"], size=config.size)
        names = tuple(payload["class_names"])
    except (KeyError, RuntimeError, TypeError) as e:
        raise PathMNISTError(
            f"{path} is a checkpoint but lacks what load_checkpoint needs "
            f"({type(e).__name__}: {str(e)[:80]}); {fix}."
        ) from None
    return Checkpoint(model.eval(), config, eval_tf, names)
