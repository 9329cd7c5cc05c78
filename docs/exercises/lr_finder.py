"""Exercise for chapter 11 (when training goes wrong): the range test's schedule and its
smoothed loss.

Write the two small functions behind `pathmnist.training.lr_finder.lr_range_test`:

- `lr_schedule(start_lr, end_lr, num_steps)`: the list of `num_steps` learning rates from
  start_lr to end_lr (both included), each the previous one times the same factor:
  lr_i = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1));
- `smooth(losses, beta)`: the exponential moving average of the losses with Adam's bias
  correction, avg_i = beta * avg_{i-1} + (1 - beta) * loss_i with avg_{-1} = 0, and
  smoothed_i = avg_i / (1 - beta ** (i + 1)).

The oracle: numpy.geomspace (relative 1e-12), a constant ratio between neighbours, and
the average computed by hand:

    python -m pathmnist.exercises check docs/exercises/lr_finder.py

Once it passes, add "test_schedule_equals_torch_exponential_lr" to ORACLE_TESTS: torch's
ExponentialLR multiplies step by step and must land on the same rates.

Hints. Do not call numpy.geomspace: that is the oracle. Without the bias correction a
constant loss of 2.0 would be "smoothed" to 0.04, 0.08, ...: why?
"""

REPLACES = {
    "pathmnist.training.lr_finder.lr_schedule": "lr_schedule",
    "pathmnist.training.lr_finder.smooth": "smooth",
}
ORACLE_TESTS = (
    "test_schedule_equals_numpy_geomspace",
    "test_schedule_rises_strictly_by_a_constant_factor",
    "test_smoothing_is_the_bias_corrected_average",
    "test_records_the_schedule_and_restores_model_and_optimizer",
)


def lr_schedule(start_lr=1e-7, end_lr=10.0, num_steps=100) -> list[float]:
    """`num_steps` learning rates from start_lr to end_lr, evenly spaced in log."""
    # YOUR CODE HERE
    raise NotImplementedError("write lr_schedule: see docs/exercises/lr_finder.py")


def smooth(losses, beta=0.98) -> list[float]:
    """The bias-corrected exponential moving average of `losses`, one value per loss."""
    # YOUR CODE HERE
    raise NotImplementedError("write smooth: see docs/exercises/lr_finder.py")
