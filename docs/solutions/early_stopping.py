"""Worked solution: the early-stopping step, Keras's rule (chapter 5).

python -m pathmnist.exercises check docs/solutions/early_stopping.py
"""

import math
import warnings

from pathmnist.errors import PathMNISTError

REPLACES = {"pathmnist.training.early_stopping.EarlyStopping.step": "step"}
ORACLE_TESTS = (
    "test_keras_golden_patience",
    "test_keras_golden_restore",
    "test_restore_copies_not_aliases",
    "test_min_delta_boundaries_exact_binary",
    "test_equal_value_is_not_an_improvement",
    "test_mode_max",
    "test_strictly_improving_never_stops",
)


def step(self, value, model=None) -> bool:
    """Record one epoch's monitored value; True means stop training now."""
    # Given: the value as a float, the model when weights are to be kept, the epoch count,
    # and an immediate stop on NaN or infinity (Keras would train on for `patience` epochs).
    try:
        value = float(value)
    except (TypeError, ValueError, RuntimeError):
        raise PathMNISTError(f"EarlyStopping.step needs one number, got {value!r}.") from None
    if self.restore_best_weights and model is None:
        raise PathMNISTError("EarlyStopping.step needs the model; call step(value, model).")
    self.epoch += 1
    if not math.isfinite(value):
        self.stopped_epoch = self.epoch
        self.reason = f"{self.monitor} became {value} at epoch {self.epoch}; stopping."
        warnings.warn(self.reason, RuntimeWarning, stacklevel=2)
        return True

    if self.mode == "min":
        improved = value + self.min_delta < self.best  # Keras's order of operations.
    else:
        improved = value - self.min_delta > self.best
    if improved:
        self.best, self.best_epoch, self.wait = value, self.epoch, 0
        if self.restore_best_weights:
            # A copy: the optimizer's later steps must not reach the kept weights.
            self.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
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
