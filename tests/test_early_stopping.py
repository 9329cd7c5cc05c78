"""EarlyStopping against Keras's EarlyStopping semantics: Keras's own golden cases
(keras/src/callbacks/early_stopping_test.py), a model whose weights equal the epoch
number, boundaries with exact binary fractions, NaN handling and state round trips."""

import math
import warnings

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from strategies import improving_series

from pathmnist.errors import PathMNISTError
from pathmnist.training.early_stopping import EarlyStopping


class EpochModel(torch.nn.Module):
    """A tiny model whose every weight is set to the epoch number, so the restored
    weights say which epoch they came from."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)
        self.bn = torch.nn.BatchNorm1d(2)  # Buffers (running stats) must be restored too.

    def set_epoch(self, epoch):
        with torch.no_grad():
            for tensor in self.state_dict().values():
                tensor.fill_(epoch)  # state_dict tensors share storage with the model.

    def epoch(self):
        values = {float(t.float().mean()) for t in self.state_dict().values()}
        assert len(values) == 1, values
        return values.pop()


def run(stopper, values, model=None):
    """Feed values epoch by epoch (weights = epoch number); return the epochs trained."""
    model = model or EpochModel()
    for epoch, value in enumerate(values, start=1):
        model.set_epoch(epoch)
        if stopper.step(value, model):
            return epoch
    return len(values)


@pytest.mark.parametrize("patience", [0, 1, 2, 3])
def test_keras_golden_patience(patience):
    """Keras test_early_stopping_patience: losses 10, 9, 8, 9, 8.9, ... stop at Keras's
    0-based epoch max(patience, 1) + 2, i.e. our 1-based epoch max(patience, 1) + 3."""
    losses = [10.0, 9.0, 8.0, 9.0, 8.9, 8.8, 8.7, 8.6, 8.5]
    stopper = EarlyStopping(patience=patience)
    run(stopper, losses)
    assert stopper.stopped_epoch == max(patience, 1) + 3
    assert stopper.best == 8.0
    assert stopper.best_epoch == 3


def test_keras_golden_restore():
    """Keras test_early_stopping_final_weights_when_restoring_model_weights: losses
    0.2, 0.15, 0.1, 0.11, 0.12 with patience 2 stop after the fifth epoch and restore
    the weights of the 0.1 epoch (Keras's epoch 2, our epoch 3)."""
    stopper = EarlyStopping(patience=2, restore_best_weights=True)
    model = EpochModel()
    trained = run(stopper, [0.2, 0.15, 0.1, 0.11, 0.12], model)
    assert trained == 5
    assert model.epoch() == 5
    stopper.restore(model)
    assert model.epoch() == 3


def test_restore_copies_not_aliases():
    """The weights keep changing after the best epoch; restore still returns the best
    epoch's values (a snapshot aliasing the model would give the last epoch's)."""
    stopper = EarlyStopping(patience=10)
    model = EpochModel()
    run(stopper, [5.0, 1.0, 2.0, 3.0, 4.0], model)  # Best at epoch 2, never stops.
    assert stopper.stopped_epoch == 0
    assert model.epoch() == 5
    stopper.restore(model)  # Restores even though training was not stopped early.
    assert model.epoch() == 2
    assert all(
        a.data_ptr() != b.data_ptr()
        for a, b in zip(stopper.best_weights.values(), model.state_dict().values(), strict=True)
    )


def test_restore_disabled_is_a_no_op():
    """With restore_best_weights False nothing is kept and restore leaves the model."""
    stopper = EarlyStopping(patience=1, restore_best_weights=False)
    model = EpochModel()
    run(stopper, [1.0, 2.0], model)
    assert stopper.best_weights is None
    stopper.restore(model)
    assert model.epoch() == 2


def test_min_delta_boundaries_exact_binary():
    """Mode min, best 1.0, min_delta 0.25: 0.75 is not an improvement (0.75 + 0.25 is not
    < 1.0), 0.5 is; the values are exact binary fractions, so no rounding decides."""
    stopper = EarlyStopping(patience=5, min_delta=0.25)
    run(stopper, [1.0, 0.75])
    assert (stopper.best, stopper.best_epoch, stopper.wait) == (1.0, 1, 1)
    stopper.step(0.5, EpochModel())
    assert (stopper.best, stopper.best_epoch, stopper.wait) == (0.5, 3, 0)


def test_equal_value_is_not_an_improvement():
    """With min_delta 0 an equal value counts as no improvement, as in Keras (strict <)."""
    stopper = EarlyStopping(patience=1)
    assert run(stopper, [0.5, 0.5, 0.25]) == 2


def test_mode_max():
    """Mode max (an accuracy): best 0.5, min_delta 0.125: 0.625 is not an improvement,
    0.75 is; three flat epochs with patience 3 stop."""
    stopper = EarlyStopping(patience=3, min_delta=0.125, mode="max")
    model = EpochModel()
    assert run(stopper, [0.5, 0.625, 0.75, 0.75, 0.5, 0.625, 1.0], model) == 6
    assert (stopper.best, stopper.best_epoch, stopper.stopped_epoch) == (0.75, 3, 6)
    stopper.restore(model)
    assert model.epoch() == 3


@settings(max_examples=50, deadline=None)
@given(series=improving_series(), patience=st.integers(0, 5))
@example(series=[1.0, 0.5, 0.25], patience=0)
def test_strictly_improving_never_stops(series, patience):
    """A strictly improving series never stops, whatever the patience; the best epoch is
    the last one."""
    stopper = EarlyStopping(patience=patience, restore_best_weights=False)
    assert not any(stopper.step(value) for value in series)
    assert stopper.best_epoch == len(series)
    assert stopper.wait == 0


@settings(max_examples=30, deadline=None)
@given(series=improving_series(mode="max"))
def test_strictly_improving_never_stops_max(series):
    """The same in mode max with an increasing series."""
    stopper = EarlyStopping(patience=0, mode="max", restore_best_weights=False)
    assert not any(stopper.step(value) for value in series)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_stops_at_once(bad):
    """A NaN or infinite value stops at that epoch, whatever the patience, with a reason
    naming the value and the epoch whose weights are restored; a RuntimeWarning says it."""
    stopper = EarlyStopping(patience=100)
    model = EpochModel()
    with pytest.warns(RuntimeWarning, match="epoch 4"):
        assert run(stopper, [3.0, 2.0, 1.0, bad, 0.0], model) == 4
    assert stopper.stopped_epoch == 4
    assert f"val_loss became {bad} at epoch 4" in stopper.reason
    assert "restoring the weights of epoch 3" in stopper.reason
    stopper.restore(model)
    assert model.epoch() == 3


def test_nan_on_first_epoch():
    """NaN on epoch 1 stops with nothing to restore; restore leaves the model alone."""
    stopper = EarlyStopping(monitor="loss")
    model = EpochModel()
    with pytest.warns(RuntimeWarning, match="loss became nan at epoch 1"):
        assert stopper.step(torch.tensor(float("nan")), model)
    assert "no earlier epoch" in stopper.reason
    stopper.restore(model)
    assert stopper.best_weights is None


def test_patience_reason():
    """Stopping for patience sets a reason naming the best value and its epoch."""
    stopper = EarlyStopping(patience=1)
    run(stopper, [1.0, 2.0])
    assert (
        stopper.reason
        == "val_loss did not improve on 1 (epoch 1) for 1 epochs; stopping at epoch 2."
    )


def test_state_dict_round_trip_mid_run(tmp_path):
    """Saved after 4 epochs through torch.save/torch.load(weights_only=True) and loaded
    into a fresh instance, the run continues identically (same stop, same restored epoch)."""
    losses = [4.0, 3.0, 3.5, 2.0, 2.5, 2.25, 3.0, 1.0]
    full = EarlyStopping(patience=3)
    full_model = EpochModel()
    full_stop = run(full, losses, full_model)

    first = EarlyStopping(patience=3)
    model = EpochModel()
    run(first, losses[:4], model)
    torch.save(first.state_dict(), tmp_path / "es.pt")
    resumed = EarlyStopping(patience=99, mode="max")  # Settings come from the state.
    resumed.load_state_dict(torch.load(tmp_path / "es.pt", weights_only=True))
    stop = None
    for epoch, value in enumerate(losses[4:], start=5):
        model.set_epoch(epoch)
        if resumed.step(value, model):
            stop = epoch
            break
    assert stop == full_stop == 7
    for key in ("best", "best_epoch", "wait", "stopped_epoch", "epoch", "reason", "patience"):
        assert getattr(resumed, key) == getattr(full, key), key
    resumed.restore(model)
    full.restore(full_model)
    assert model.epoch() == full_model.epoch() == 4


def test_state_dict_is_a_copy():
    """Changing the model after state_dict() does not change the saved best weights."""
    stopper = EarlyStopping()
    model = EpochModel()
    run(stopper, [1.0], model)
    state = stopper.state_dict()
    model.set_epoch(7)
    stopper.best_weights["linear.weight"].fill_(9)
    assert float(state["best_weights"]["linear.weight"].mean()) == 1.0


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"patience": -1}, "patience"),
        ({"patience": 1.5}, "patience"),
        ({"patience": True}, "patience"),
        ({"min_delta": -0.1}, "min_delta"),
        ({"min_delta": math.nan}, "min_delta"),
        ({"mode": "auto"}, "mode"),
        ({"mode": "MIN"}, "mode"),
    ],
)
def test_bad_arguments(kwargs, words):
    """A bad patience, min_delta or mode raises PathMNISTError naming it."""
    with pytest.raises(PathMNISTError, match=words):
        EarlyStopping(**kwargs)


def test_bad_step_calls():
    """A non-number value, or no model while restoring weights, raises PathMNISTError."""
    with pytest.raises(PathMNISTError, match="one number"):
        EarlyStopping().step("low", EpochModel())
    with pytest.raises(PathMNISTError, match="one number"):
        EarlyStopping().step(torch.ones(3), EpochModel())
    with pytest.raises(PathMNISTError, match="needs the model"):
        EarlyStopping().step(1.0)


def test_bad_state():
    """A state missing keys raises PathMNISTError naming them."""
    with pytest.raises(PathMNISTError, match="missing"):
        EarlyStopping().load_state_dict({"patience": 3})


def test_no_warning_on_finite_values():
    """Finite values never warn."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(EarlyStopping(patience=1), [1.0, 2.0])
