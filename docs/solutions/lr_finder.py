"""Worked solution: the range test's schedule and its smoothed loss (chapter 11).

python -m pathmnist.exercises check docs/solutions/lr_finder.py
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
    ratio = end_lr / start_lr
    # i / (n - 1) runs from 0 to exactly 1: the first rate is start_lr, the last end_lr.
    return [start_lr * ratio ** (i / (num_steps - 1)) for i in range(num_steps)]


def smooth(losses, beta=0.98) -> list[float]:
    """The bias-corrected exponential moving average of `losses`, one value per loss."""
    avg, out = 0.0, []
    for i, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * float(loss)
        # avg started at 0, so after i + 1 steps its weights sum to 1 - beta ** (i + 1):
        # dividing by that sum makes it a true weighted mean from the first step on.
        out.append(avg / (1 - beta ** (i + 1)))
    return out
