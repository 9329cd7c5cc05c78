"""Exercise for chapter 5: StepLR's rule.

Write `closed_form(self)`, the learning rate of every parameter group after
`self.last_epoch` calls of `step()`:

    lr = base_lr * gamma ** floor(last_epoch / step_size),

one value per entry of `self.base_lrs`, as a list. `pathmnist.training.schedulers.StepLR.step()`
calls it after advancing `last_epoch` and writes the values into the optimizer; the
constructor takes the first step, so right after construction last_epoch is 0 and the rate
is base_lr.

The oracle: torch's own StepLR, step by step (hypothesis over step sizes, gammas and
parameter groups), and the golden list from torch's test suite, [0.1]*3 + [0.01]*3 +
[0.001]*3 + [1e-4] for lr 0.1, step size 3, gamma 0.1:

    python -m pathmnist.exercises check docs/exercises/step_lr.py

A failure names the first epoch at which your StepLR gives another lr than torch's, and
both values.

Hint. `//` is floor division for non-negative ints; the attributes are self.base_lrs,
self.gamma, self.step_size and self.last_epoch.
"""

REPLACES = {"pathmnist.training.schedulers.StepLR._closed_form": "closed_form"}
ORACLE_TESTS = (
    "test_first_epoch_that_differs_from_torch_is_named",
    "test_torch_golden_get_last_lr",
    "test_torch_golden_two_groups",
    "test_seed_schedule_step5_gamma01",
    "test_matches_torch_every_step",
)


def closed_form(self) -> list[float]:
    """The lr of each param group at epoch `self.last_epoch`."""
    # YOUR CODE HERE
    raise NotImplementedError("write StepLR's rule: see docs/exercises/step_lr.py")
