"""A run's per-epoch record: History, its history.csv, and the one definition of the best
epoch that early stopping, tuning and the report share.

The best epoch is the first epoch whose monitored value (config.monitor, e.g. val_loss)
improved on every earlier one by more than min_delta, exactly as `EarlyStopping` (Keras
semantics) decides which weights to restore. Tuning ranks trials by the row of that epoch,
so a trial's "best val acc" and "val loss" come from the same epoch.

history.csv is written with the stdlib csv module; floats as repr, which round-trips
exactly, so a resumed run's file equals an uninterrupted run's.

Tested in tests/test_history.py (round trip, best epoch against EarlyStopping on
hypothesis series, hand-edited files refused with one sentence).
"""

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from pathmnist.config import MONITORS
from pathmnist.errors import PathMNISTError
from pathmnist.files import write_text
from pathmnist.training.early_stopping import EarlyStopping

# lr: the learning rate used during the epoch; seconds: wall-clock time of the epoch;
# device and precision: where it ran (a resume may move a run to another machine).
NUMBER_COLUMNS = ("train_loss", "train_acc", "val_loss", "val_acc", "val_auc", "lr", "seconds")
HISTORY_COLUMNS = ("epoch", *NUMBER_COLUMNS, "device", "precision")


def best_row(rows, monitor: str = "val_loss", min_delta: float = 0.0) -> dict | None:
    """The row of the best epoch by `monitor` (None if no value is finite): a row becomes
    the best when it beats the best so far by more than `min_delta`."""
    # EarlyStopping's own test, in Keras's order of operations (`value + min_delta < best`):
    # an algebraically equal form such as `value < best - min_delta` rounds differently when
    # a change is within a rounding error of min_delta (0.3 after 0.2 with min_delta 0.1).
    stopper = EarlyStopping(0, min_delta, MONITORS[monitor], restore_best_weights=False)
    best = None
    for row in rows:
        value = float(row[monitor])
        if math.isfinite(value) and stopper.is_improvement(value):
            stopper.best, best = value, row
    return best


def format_epoch(row: dict, epochs: int, best: bool = False) -> str:
    """The line `fit` prints after an epoch (and README quotes from history.csv)."""
    return (
        f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f} acc "
        f"{row['train_acc']:.4f} | val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f} "
        f"auc {row['val_auc']:.4f} | lr {row['lr']:.1e} | {row['seconds']:.1f}s"
        + ("  *best*" if best else "")
    )


@dataclass
class History:
    """What `fit` returns: per-epoch rows, the best epoch and the best model."""

    rows: list[dict]  # One dict per epoch with the keys HISTORY_COLUMNS.
    best_epoch: int = 0  # 1-based; 0 if no epoch had a finite monitored value.
    stopped_early: bool = False
    model: nn.Module | None = None  # Best weights restored, in eval mode.
    eval_transform: object = None  # Normalises (and resizes) other splits as val.
    # A training.loop.Predictor: the model with the run's device, precision and TTA.
    predictor: object = None

    def best(self) -> dict | None:
        """The row of the best epoch (None before the first epoch)."""
        return next((r for r in self.rows if r["epoch"] == self.best_epoch), None)

    def to_csv(self, path) -> Path:
        """Write the rows as CSV atomically; repr of a float round-trips exactly."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(HISTORY_COLUMNS)
        for r in self.rows:
            numbers = [repr(float(r[c])) for c in NUMBER_COLUMNS]
            writer.writerow([int(r["epoch"]), *numbers, r["device"], r["precision"]])
        return write_text(path, buffer.getvalue())

    @classmethod
    def from_csv(cls, path, monitor: str = "val_loss", min_delta: float = 0.0) -> "History":
        """Read a history.csv; best_epoch by `best_row`. A file that is not one (another
        header, a value that is not a number, epochs out of order) is a PathMNISTError."""
        fix = "delete it and rerun, or restore the file the run wrote"
        try:
            with open(path, newline="") as f:
                table = list(csv.reader(f))
        except (OSError, UnicodeDecodeError) as e:
            raise PathMNISTError(f"cannot read {path} ({e}); {fix}.") from None
        if not table or tuple(table[0]) != HISTORY_COLUMNS:
            raise PathMNISTError(
                f"{path} is not a history.csv of this version: its header should be "
                f"{','.join(HISTORY_COLUMNS)}; {fix}."
            )
        rows = []
        for n, line in enumerate(table[1:], start=2):
            try:
                row = dict(zip(HISTORY_COLUMNS, line, strict=True))
                row.update({c: float(row[c]) for c in NUMBER_COLUMNS})
                row["epoch"] = int(row["epoch"])
            except ValueError:
                raise PathMNISTError(f"{path} line {n} is not a history row; {fix}.") from None
            if row["epoch"] != len(rows) + 1:
                raise PathMNISTError(f"{path} line {n} has epoch {row['epoch']}; {fix}.")
            rows.append(row)
        best = best_row(rows, monitor, min_delta)
        return cls(rows, best_epoch=best["epoch"] if best else 0)
