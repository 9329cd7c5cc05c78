"""Worked solution: StepLR's rule (chapter 5).

python -m pathmnist.exercises check docs/solutions/step_lr.py
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
    decays = self.last_epoch // self.step_size  # Boundaries passed so far.
    return [base * self.gamma**decays for base in self.base_lrs]
