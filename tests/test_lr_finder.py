"""Tests of pathmnist.training.lr_finder: the range test's schedule against numpy.geomspace and
torch's ExponentialLR, its smoothing, its stop rules, and that it leaves the model and the
optimizer as it found them."""

import math

import matplotlib
import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn

from pathmnist.errors import PathMNISTError
from pathmnist.training import lr_finder
from pathmnist.training.lr_finder import LRFinderResult, lr_range_test, lr_schedule, smooth

matplotlib.use("Agg")

start_lrs = st.floats(1e-8, 1e-1)
ratios = st.floats(1.5, 1e9)
step_counts = st.integers(2, 300)


def toy_problem(n=64, seed=0):
    """A linearly separable 3-class problem, a linear model and SGD: one batch per step."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g, dtype=torch.float64)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()  # (n,) labels in {0, 1, 2}
    torch.manual_seed(seed)
    model = nn.Linear(5, 3).double()
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, n, 16)]
    return model, batches, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


@settings(deadline=None, max_examples=50)
@given(start=start_lrs, ratio=ratios, n=step_counts)
@example(start=1e-7, ratio=1e8, n=100)  # fastai's defaults: 1e-7 to 10 in 100 steps.
@example(start=1e-3, ratio=10.0, n=2)
def test_schedule_equals_numpy_geomspace(start, ratio, n):
    """The rates are numpy.geomspace(start, end, n): relative 1e-12, ends included."""
    lrs = lr_schedule(start, start * ratio, n)
    np.testing.assert_allclose(lrs, np.geomspace(start, start * ratio, n), rtol=1e-12, atol=0)
    assert lrs[0] == start and math.isclose(lrs[-1], start * ratio, rel_tol=1e-15)


@settings(deadline=None, max_examples=25)
@given(start=start_lrs, ratio=ratios, n=step_counts)
def test_schedule_equals_torch_exponential_lr(start, ratio, n):
    """Step i's rate equals torch's ExponentialLR with gamma = ratio ** (1 / (n - 1)) after
    i steps (torch multiplies step by step; relative 1e-12 covers its rounding)."""
    gamma = ratio ** (1 / (n - 1))
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=start)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)
    theirs = []
    for _ in range(n):
        theirs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(lr_schedule(start, start * ratio, n), theirs, rtol=1e-12, atol=0)


@settings(deadline=None, max_examples=50)
@given(start=start_lrs, ratio=ratios, n=step_counts)
def test_schedule_rises_strictly_by_a_constant_factor(start, ratio, n):
    """Each rate is the previous one times the same factor: monotone, log-evenly spaced."""
    lrs = np.array(lr_schedule(start, start * ratio, n))
    assert np.all(np.diff(lrs) > 0)
    factors = lrs[1:] / lrs[:-1]
    np.testing.assert_allclose(factors, ratio ** (1 / (n - 1)), rtol=1e-12)


def test_smoothing_is_the_bias_corrected_average():
    """smooth() equals the formula by hand; a constant series stays constant (the bias
    correction at work: without it the first values would start near 0)."""
    losses, beta = [2.0, 1.0, 4.0, 3.0], 0.9
    avg, expected = 0.0, []
    for i, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * loss
        expected.append(avg / (1 - beta ** (i + 1)))
    np.testing.assert_allclose(smooth(losses, beta), expected, rtol=1e-15)
    assert smooth([2.0], beta) == [2.0]
    np.testing.assert_allclose(smooth([1.7] * 50), 1.7, rtol=1e-12)


def test_records_the_schedule_and_restores_model_and_optimizer():
    """A run that does not diverge records every rate of the schedule, and the model's
    weights, its mode and the optimizer's state and lr come back bit for bit."""
    model, batches, optimizer = toy_problem()
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(batches[0][0]), batches[0][1]).backward()
    optimizer.step()  # Momentum buffers exist now: they must come back too.
    before = {k: v.clone() for k, v in model.state_dict().items()}
    momentum = {k: v["momentum_buffer"].clone() for k, v in optimizer.state_dict()["state"].items()}
    model.eval()
    result = lr_range_test(model, batches, optimizer, start_lr=1e-5, end_lr=1e-2, num_steps=10)
    assert not result.diverged and "reached end_lr" in result.reason
    np.testing.assert_allclose(result.lrs, lr_schedule(1e-5, 1e-2, 10), rtol=0, atol=0)
    assert len(result.losses) == len(result.smoothed) == 10  # 4 batches, cycled: 10 steps.
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    for k, v in optimizer.state_dict()["state"].items():
        assert torch.equal(v["momentum_buffer"], momentum[k])
    assert optimizer.param_groups[0]["lr"] == 0.1 and not model.training


def test_stops_when_the_loss_diverges():
    """Rates up to 1e6 blow the loss up: the test stops before the end of the schedule,
    the last smoothed loss above 4x the minimum; the minimum lies below the stop."""
    model, batches, optimizer = toy_problem()
    result = lr_range_test(model, batches, optimizer, start_lr=1e-4, end_lr=1e6, num_steps=200)
    assert result.diverged and len(result.lrs) < 200
    last = result.smoothed[-1]
    assert not math.isfinite(last) or last > 4 * min(result.smoothed[:-1])
    assert result.minimum() < result.lrs[-1]
    assert result.lrs[0] <= result.steepest() < result.minimum()


def test_stops_at_once_on_a_nan_loss():
    """A NaN loss ends the test at that step, whatever the smoothed value."""
    model, batches, optimizer = toy_problem()
    calls = []

    def loss_fn(logits, labels):
        calls.append(1)
        loss = nn.functional.cross_entropy(logits, labels)
        return loss * float("nan") if len(calls) == 3 else loss

    result = lr_range_test(model, batches, optimizer, loss_fn, 1e-5, 1e-3, num_steps=20)
    assert result.diverged and len(result.losses) == 3 and math.isnan(result.losses[-1])
    assert "nan" in result.reason


def test_plot_draws_the_curve(tmp_path):
    """plot() writes a PNG with the smoothed curve on a log axis."""
    lrs = lr_schedule(1e-5, 1.0, 50)
    losses = [2.0 - 1.5 * math.exp(-((math.log10(lr) + 2) ** 2)) for lr in lrs]
    result = LRFinderResult(lrs, losses, smooth(losses, 0.5), diverged=False)
    fig = lr_finder.plot(result, tmp_path / "lr.png")
    assert (tmp_path / "lr.png").stat().st_size > 0 and fig.axes[0].get_xscale() == "log"
    assert 1e-4 < result.steepest() < result.minimum() < 1e-1


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"start_lr": 0.0}, "start_lr"),
        ({"start_lr": 1.0, "end_lr": 0.1}, "end_lr"),
        ({"num_steps": 1}, "num_steps"),
        ({"num_steps": 2.5}, "num_steps"),
        ({"beta": 1.0}, "beta"),
        ({"diverge": 1.0}, "diverge"),
    ],
)
def test_bad_arguments(kwargs, words):
    """Each bad argument is one PathMNISTError naming it."""
    model, batches, optimizer = toy_problem()
    with pytest.raises(PathMNISTError, match=words):
        lr_range_test(model, batches, optimizer, **kwargs)


def test_empty_loader_and_flat_curve():
    """No batches, or a loss that never falls, is a PathMNISTError with a fix."""
    model, _, optimizer = toy_problem()
    with pytest.raises(PathMNISTError, match="no batches"):
        lr_range_test(model, [], optimizer, num_steps=5)
    flat = LRFinderResult([1e-3, 1e-2, 1e-1], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], True)
    with pytest.raises(PathMNISTError, match="hardly fell"):
        flat.steepest()


def test_steepest_skips_the_first_steps():
    """A drop at the very first step (the average resting on one batch) is not the
    steepest descent: by default a tenth of the steps, at least one, is left out."""
    lrs = lr_schedule(1e-4, 1.0, 20)
    smoothed = [5.0] + [2.0 - 0.05 * i for i in range(12)] + [2.0 + i for i in range(7)]
    result = LRFinderResult(lrs, smoothed, smoothed, diverged=True)
    assert result.steepest(skip_start=0) == lrs[0]
    assert lrs[1] <= result.steepest() < result.minimum() == lrs[12]
