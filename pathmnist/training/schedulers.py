"""StepLR: decay every parameter group's learning rate by `gamma` every `step_size` epochs.

    lr(k) = base_lr * gamma ** (k // step_size),   k = last_epoch = number of step() calls

This is `torch.optim.lr_scheduler.StepLR` written out, with torch's names (`step`,
`get_last_lr`, `last_epoch`, `base_lrs`, `state_dict`, `load_state_dict`) and torch's
start-up behaviour: the constructor stores each group's lr as `"initial_lr"` (keeping
one that is already there, as when resuming) and takes an initial step, so
`last_epoch == 0` and the lr is `base_lr` right after construction.

One difference, on purpose: torch computes the next lr in "chainable" form (multiply the
optimizer's current lr by gamma at each boundary), we use the closed form above. The two
agree to rounding (about 1e-16 relative; tests compare at 1e-12), but the closed form
owns the lr: a change made to `group["lr"]` from outside is overwritten at the next
`step()`, where torch would carry it along.

Tested against torch's StepLR at every step (hypothesis over step sizes, gammas and
param groups), and on torch's own golden list from test/optim/test_lrscheduler.py
(`test_get_last_lr_step_lr`: lr 0.1, step_size 3, gamma 0.1 gives
`[0.1]*3 + [0.01]*3 + [0.001]*3 + [1e-4]`).
"""

import math
import numbers

import torch

from pathmnist.errors import PathMNISTError

# The keys state_dict() writes; all of them are also keys of torch's StepLR.state_dict(),
# with the same meaning, so a torch StepLR state loads here and vice versa.
_STATE_KEYS = ("step_size", "gamma", "base_lrs", "last_epoch")


def _check_step_size(step_size) -> int:
    # bool is a subclass of int in Python; StepLR(opt, True) is a mistake, not step_size 1.
    if isinstance(step_size, bool) or not isinstance(step_size, numbers.Integral):
        raise PathMNISTError(
            f"StepLR step_size must be a whole number of epochs, got {step_size!r}; "
            "pass an int such as 5."
        )
    if step_size < 1:
        raise PathMNISTError(
            f"StepLR step_size must be at least 1, got {step_size}; pass the number of "
            "epochs between decays, such as 5."
        )
    return int(step_size)


def _check_gamma(gamma) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real):
        raise PathMNISTError(f"StepLR gamma must be a number, got {gamma!r}; pass e.g. 0.1.")
    if not (math.isfinite(gamma) and gamma > 0):
        raise PathMNISTError(
            f"StepLR gamma must be a finite number above 0, got {gamma}; pass the "
            "decay factor, e.g. 0.1 to divide the lr by ten."
        )
    return float(gamma)


class StepLR:
    """Multiply every group's lr by `gamma` once every `step_size` calls of `step()`.

    Call `step()` once per epoch, after that epoch's optimizer steps, as with torch.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, step_size: int, gamma: float = 0.1):
        if not isinstance(optimizer, torch.optim.Optimizer) or not optimizer.param_groups:
            raise PathMNISTError(
                f"StepLR needs a torch.optim.Optimizer with parameter groups, got "
                f"{type(optimizer).__name__}; pass e.g. torch.optim.Adam(model.parameters())."
            )
        self.optimizer = optimizer
        self.step_size = _check_step_size(step_size)
        self.gamma = _check_gamma(gamma)
        # As torch: keep an "initial_lr" that is already there (a resumed optimizer),
        # otherwise record the current lr; base_lrs are read from it.
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [float(group["initial_lr"]) for group in optimizer.param_groups]
        # torch's constructor performs one step from last_epoch -1, so it sits at 0.
        self.last_epoch = -1
        self.step()

    def _closed_form(self) -> list[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]

    def step(self) -> None:
        """Advance one epoch and write the new lr into every param group."""
        self.last_epoch += 1
        self._last_lr = self._closed_form()
        for group, lr in zip(self.optimizer.param_groups, self._last_lr, strict=True):
            group["lr"] = lr

    def get_last_lr(self) -> list[float]:
        """The lr of each param group set by the latest step (a new list)."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """What a resume needs: the schedule and how far along it is (no optimizer)."""
        return {
            "step_size": self.step_size,
            "gamma": self.gamma,
            "base_lrs": list(self.base_lrs),
            "last_epoch": self.last_epoch,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Continue the schedule saved by `state_dict()` (ours or torch's StepLR's).

        The lr of every param group is set to the saved epoch's value at once, so the
        optimizer is consistent with the schedule even if its own state is not loaded.
        """
        missing = [key for key in _STATE_KEYS if key not in state_dict]
        if missing:
            raise PathMNISTError(
                f"StepLR state is missing {', '.join(missing)}; pass a dict written by "
                "StepLR.state_dict()."
            )
        base_lrs = [float(lr) for lr in state_dict["base_lrs"]]
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise PathMNISTError(
                f"StepLR state has {len(base_lrs)} learning rates but the optimizer has "
                f"{len(self.optimizer.param_groups)} param groups; build the optimizer with "
                "the same groups as the run that saved the state."
            )
        self.step_size = _check_step_size(state_dict["step_size"])
        self.gamma = _check_gamma(state_dict["gamma"])
        self.base_lrs = base_lrs
        self.last_epoch = int(state_dict["last_epoch"])
        self._last_lr = self._closed_form()
        for group, base, lr in zip(
            self.optimizer.param_groups, base_lrs, self._last_lr, strict=True
        ):
            group["initial_lr"] = base
            group["lr"] = lr
