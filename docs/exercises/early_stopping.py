"""Exercise for chapter 5: the early-stopping step, Keras's rule.

Write the core of `step(self, value, model)` for `pathmnist.training.early_stopping.EarlyStopping`,
called once per epoch with that epoch's monitored value (the validation loss, say). The
part that is not the lesson is written for you below: turning the value into a float,
counting the epoch, and stopping at once on a NaN. Yours is Keras's rule:

1. `value` improves when `value + self.min_delta < self.best` (mode "min") or
   `value - self.min_delta > self.best` (mode "max"); equal is not better. Write the test
   yourself (the package's `is_improvement` would do it: do not call it).
2. On an improvement: `self.best = value`, `self.best_epoch = self.epoch`, `self.wait = 0`,
   and, when `self.restore_best_weights`, keep a COPY of the weights in
   `self.best_weights` (a dict name -> tensor); return False.
3. Otherwise `self.wait += 1`; when `self.wait >= self.patience`, set
   `self.stopped_epoch = self.epoch`, a one-sentence `self.reason`, and return True;
   else return False.

The oracle: Keras's golden patience table and weight-restoring test, and a model whose
every weight equals the epoch number, so the restored weights say which epoch they are:

    python -m pathmnist.exercises check docs/exercises/early_stopping.py

Hint. `model.state_dict()` holds the live tensors: keeping it (or the model) keeps an
alias that follows every later update. `v.detach().clone()` copies a tensor.
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

    # YOUR CODE HERE: steps 1 to 3 of the rule at the top of this file.
    raise NotImplementedError("write Keras's rule: see docs/exercises/early_stopping.py")
