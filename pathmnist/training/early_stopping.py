"""EarlyStopping: stop training when a monitored value stops improving, keep the best weights.

Semantics are Keras's `keras.callbacks.EarlyStopping` (keras/src/callbacks/early_stopping.py),
with Keras's words `monitor, mode, min_delta, patience, restore_best_weights`:

- an epoch improves when `value + min_delta < best` (mode "min") or
  `value - min_delta > best` (mode "max"), computed in that order as Keras does; `best`
  starts at +inf (min) or -inf (max);
- `wait` is reset to 0 on an improvement, otherwise incremented; training stops when
  `wait >= patience` (so patience 0 and 1 both stop at the first epoch that does not
  improve, as in Keras);
- the best weights are restored at the end of training whether or not it stopped early.

Differences from Keras, all deliberate:

- epochs are counted from 1 (the first `step()` call is epoch 1, as in history.csv);
  `best_epoch` is the epoch whose weights are kept and `stopped_epoch` is the epoch at
  which `step()` returned True (0 while it has not stopped);
- a NaN or infinite value stops at once: `step()` returns True, `reason` says what
  happened and a RuntimeWarning repeats it (Keras counts a NaN as "no improvement" and
  trains on for `patience` more epochs of garbage);
- no `baseline`, `start_from_epoch` or mode "auto"; a bad argument raises PathMNISTError.

The best weights are a copy, `copy.deepcopy(model.state_dict())`, never the model
or its tensors: MedMNIST's own script (MedMNIST/experiments, MedMNIST2D/
train_and_eval_pytorch.py) keeps `best_model = model`, an alias that follows every later
update and so "restores" the last epoch.

Tested on Keras's golden patience table (keras early_stopping_test.py,
test_early_stopping_patience and the DummyModel weight-restoring test), with a model
whose weights equal the epoch number, and with hypothesis properties.
"""

import copy
import math
import numbers
import warnings

import torch

from pathmnist.errors import PathMNISTError

MODES = ("min", "max")


class EarlyStopping:
    """Call `step(value, model)` once per epoch; stop when it returns True; then `restore`."""

    def __init__(
        self,
        patience: int = 3,
        min_delta: float = 0.0,
        mode: str = "min",
        restore_best_weights: bool = True,
        *,
        monitor: str = "val_loss",
    ):
        if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 0:
            raise PathMNISTError(
                f"EarlyStopping patience must be a whole number of epochs >= 0, got "
                f"{patience!r}; pass e.g. 3."
            )
        if not isinstance(min_delta, numbers.Real) or not (
            math.isfinite(min_delta) and min_delta >= 0
        ):
            raise PathMNISTError(
                f"EarlyStopping min_delta must be a finite number >= 0, got {min_delta!r}; "
                "pass the smallest change that counts as an improvement, e.g. 0.0."
            )
        if mode not in MODES:
            raise PathMNISTError(
                f"EarlyStopping mode must be 'min' or 'max', got {mode!r}; use 'min' for a "
                "loss and 'max' for an accuracy or AUC."
            )
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.mode = mode
        self.restore_best_weights = bool(restore_best_weights)
        self.monitor = str(monitor)  # Only used to word `reason`.
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = 0  # 1-based; 0 until some epoch has a finite value.
        self.wait = 0
        self.stopped_epoch = 0  # 1-based; 0 while training has not been stopped.
        self.epoch = 0  # Number of step() calls so far, i.e. the last epoch seen.
        self.reason = ""  # One sentence once step() has returned True.
        self.best_weights: dict[str, torch.Tensor] | None = None

    def is_improvement(self, value: float) -> bool:
        """Keras's test, in Keras's order of operations."""
        if self.mode == "min":
            return value + self.min_delta < self.best
        return value - self.min_delta > self.best

    def step(self, value, model: torch.nn.Module | None = None) -> bool:
        """Record one epoch's monitored value; True means stop training now.

        `model` is needed when restore_best_weights is True: its state_dict is copied
        whenever the value improves.
        """
        try:
            value = float(value)
        except (TypeError, ValueError, RuntimeError):
            raise PathMNISTError(
                f"EarlyStopping.step needs one number, got {type(value).__name__}; pass the "
                f"epoch's {self.monitor} as a float."
            ) from None
        if self.restore_best_weights and model is None:
            raise PathMNISTError(
                "EarlyStopping.step needs the model when restore_best_weights is True; "
                "call step(value, model)."
            )
        self.epoch += 1
        if not math.isfinite(value):
            self.stopped_epoch = self.epoch
            if not self.restore_best_weights:
                kept = "keeping the current weights"
            elif self.best_weights is None:
                kept = "leaving the weights as they are (no earlier epoch to restore)"
            else:
                kept = f"restoring the weights of epoch {self.best_epoch}"
            self.reason = (
                f"{self.monitor} became {value} at epoch {self.epoch}; stopping and {kept}; "
                "lower the learning rate or check the data for NaNs."
            )
            warnings.warn(self.reason, RuntimeWarning, stacklevel=2)
            return True
        if self.is_improvement(value):
            self.best, self.best_epoch, self.wait = value, self.epoch, 0
            if self.restore_best_weights:
                # A copy, never an alias: later optimizer steps must not reach it.
                self.best_weights = copy.deepcopy(model.state_dict())
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = self.epoch
            self.reason = (
                f"{self.monitor} did not improve on {self.best:.6g} (epoch {self.best_epoch}) "
                f"for {self.wait} epochs; stopping at epoch {self.epoch}."
            )
            return True
        return False

    def restore(self, model: torch.nn.Module) -> None:
        """Load the best epoch's weights into `model` (a no-op if none are kept)."""
        if self.restore_best_weights and self.best_weights is not None:
            model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        """Everything a resumed run needs, best weights included (plain types and
        tensors, so `torch.load(..., weights_only=True)` reads it back)."""
        return {
            "patience": self.patience,
            "min_delta": self.min_delta,
            "mode": self.mode,
            "restore_best_weights": self.restore_best_weights,
            "monitor": self.monitor,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "epoch": self.epoch,
            "reason": self.reason,
            "best_weights": copy.deepcopy(self.best_weights),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Continue exactly where the run that wrote `state_dict()` left off."""
        missing = [key for key in self.state_dict() if key not in state_dict]
        if missing:
            raise PathMNISTError(
                f"EarlyStopping state is missing {', '.join(missing)}; pass a dict written "
                "by EarlyStopping.state_dict()."
            )
        # Re-run the argument checks on the saved settings, then take the counters.
        self.__init__(
            state_dict["patience"],
            state_dict["min_delta"],
            state_dict["mode"],
            state_dict["restore_best_weights"],
            monitor=state_dict["monitor"],
        )
        self.best = float(state_dict["best"])
        for key in ("best_epoch", "wait", "stopped_epoch", "epoch"):
            setattr(self, key, int(state_dict[key]))
        self.reason = str(state_dict["reason"])
        weights = state_dict["best_weights"]
        self.best_weights = copy.deepcopy(weights)
