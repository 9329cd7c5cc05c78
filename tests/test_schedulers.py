"""StepLR against torch.optim.lr_scheduler.StepLR: same lr at every step, torch's golden
lists, state round trips and bad arguments."""

import math

import pytest
import torch
from hypothesis import example, given, settings
from strategies import gammas, learning_rates, step_sizes

from pathmnist.errors import PathMNISTError
from pathmnist.training.schedulers import StepLR


def make_optimizer(lrs, cls=torch.optim.SGD):
    """An optimizer with one param group per lr (each group one tiny parameter)."""
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in lrs]
    return cls(groups, lr=lrs[0])


def run_schedule(scheduler, optimizer, epochs):
    """get_last_lr() at the start of each epoch, stepping as a training loop does."""
    seen = []
    for _ in range(epochs):
        seen.append(scheduler.get_last_lr())
        optimizer.step()
        scheduler.step()
    return seen


def assert_close_lists(ours, theirs, rel=1e-12):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a == pytest.approx(b, rel=rel, abs=0.0)


def test_torch_golden_get_last_lr():
    """torch's test_get_last_lr_step_lr: lr 0.1, step_size 3, gamma 0.1 over 10 epochs
    gives [0.1]*3 + [0.01]*3 + [0.001]*3 + [1e-4]."""
    optimizer = make_optimizer([0.1])
    seen = run_schedule(StepLR(optimizer, 3, gamma=0.1), optimizer, 10)
    golden = [0.1] * 3 + [0.01] * 3 + [0.001] * 3 + [0.0001]
    assert_close_lists([lrs[0] for lrs in seen], golden)


def test_torch_golden_two_groups():
    """torch's test_step_lr: groups at lr 0.05 and 0.5 follow [0.05]*3 + [0.005]*3 +
    [0.0005]*3 + [0.00005] and ten times that."""
    optimizer = make_optimizer([0.05, 0.5])
    scheduler = StepLR(optimizer, gamma=0.1, step_size=3)
    single = [0.05] * 3 + [0.005] * 3 + [0.0005] * 3 + [0.00005]
    seen = []
    for _ in range(10):
        seen.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    assert_close_lists([lrs[0] for lrs in seen], single)
    assert_close_lists([lrs[1] for lrs in seen], [x * 10 for x in single])


def test_first_epoch_that_differs_from_torch_is_named():
    """Over 20 epochs (lrs 0.1 and 0.05, step size 3, gamma 0.5) every group's lr equals
    torch's StepLR; on a difference the message names the first epoch that differs, with
    both learning rates, so a learner sees where their rule goes wrong."""
    ours_opt, torch_opt = make_optimizer([0.1, 0.05]), make_optimizer([0.1, 0.05])
    ours = StepLR(ours_opt, 3, 0.5)
    ref = torch.optim.lr_scheduler.StepLR(torch_opt, 3, 0.5)
    for epoch in range(20):
        got, want = ours.get_last_lr(), ref.get_last_lr()
        assert got == pytest.approx(want, rel=1e-12, abs=0.0), (
            f"epoch {epoch} (after {epoch} calls of step(); step_size 3, gamma 0.5, base lrs "
            f"[0.1, 0.05]) is the first where your StepLR differs from torch's: yours gives "
            f"{got}, torch's {want}"
        )
        ours_opt.step()
        torch_opt.step()
        ours.step()
        ref.step()


def test_seed_schedule_step5_gamma01():
    """The seed's StepLR(5, 0.1) from lr 1e-3: 1e-3 for epochs 1-5, 1e-4 for 6-10."""
    optimizer = make_optimizer([1e-3], torch.optim.Adam)
    seen = run_schedule(StepLR(optimizer, 5, 0.1), optimizer, 10)
    assert_close_lists([lrs[0] for lrs in seen], [1e-3] * 5 + [1e-4] * 5)


@settings(max_examples=60, deadline=None)
@given(step_size=step_sizes, gamma=gammas, lrs=learning_rates)
@example(step_size=1, gamma=1.0, lrs=[0.1])
@example(step_size=20, gamma=1e-3, lrs=[1e-5, 1.0, 0.3])
def test_matches_torch_every_step(step_size, gamma, lrs):
    """Over 100 steps, every group's lr equals torch's StepLR to 1e-12 relative, and
    last_epoch, base_lrs and the "initial_lr" entries match too."""
    ours_opt, torch_opt = make_optimizer(lrs), make_optimizer(lrs)
    ours = StepLR(ours_opt, step_size, gamma)
    ref = torch.optim.lr_scheduler.StepLR(torch_opt, step_size, gamma)
    for _ in range(100):
        assert ours.last_epoch == ref.last_epoch
        assert_close_lists(ours.get_last_lr(), ref.get_last_lr())
        assert_close_lists(
            [g["lr"] for g in ours_opt.param_groups], [g["lr"] for g in torch_opt.param_groups]
        )
        ours_opt.step()
        torch_opt.step()
        ours.step()
        ref.step()
    assert ours.base_lrs == ref.base_lrs
    assert [g["initial_lr"] for g in ours_opt.param_groups] == lrs


@settings(max_examples=30, deadline=None)
@given(step_size=step_sizes, gamma=gammas, lrs=learning_rates)
def test_closed_form(step_size, gamma, lrs):
    """After k steps the lr is exactly base * gamma ** (k // step_size)."""
    optimizer = make_optimizer(lrs)
    scheduler = StepLR(optimizer, step_size, gamma)
    for k in range(45):
        assert scheduler.get_last_lr() == [lr * gamma ** (k // step_size) for lr in lrs]
        scheduler.step()


def test_constructor_mirrors_torch():
    """Right after construction last_epoch is 0, the lr is unchanged and an existing
    "initial_lr" (a resumed optimizer) is kept as base_lr, as torch does."""
    optimizer = make_optimizer([0.3])
    scheduler = StepLR(optimizer, 2)
    assert scheduler.last_epoch == 0
    assert optimizer.param_groups[0]["lr"] == 0.3
    resumed = make_optimizer([0.003])
    resumed.param_groups[0]["initial_lr"] = 0.3
    assert StepLR(resumed, 2).base_lrs == [0.3]
    assert torch.optim.lr_scheduler.StepLR(make_optimizer([0.003]), 2).base_lrs == [0.003]


def test_state_dict_round_trip_continues():
    """A state saved after 7 steps, loaded into a fresh scheduler on a fresh optimizer,
    continues with the same lrs as the uninterrupted run."""
    lrs = [0.1, 0.02]
    optimizer = make_optimizer(lrs)
    full = StepLR(optimizer, 3, 0.5)
    for _ in range(7):
        full.step()
    saved = full.state_dict()
    fresh_opt = make_optimizer([9.0, 9.0])  # Wrong lrs on purpose: the state must win.
    resumed = StepLR(fresh_opt, 1, 0.9)
    resumed.load_state_dict(saved)
    assert resumed.get_last_lr() == full.get_last_lr()
    assert [g["lr"] for g in fresh_opt.param_groups] == full.get_last_lr()
    for _ in range(12):
        full.step()
        resumed.step()
        assert resumed.get_last_lr() == full.get_last_lr()
        assert resumed.last_epoch == full.last_epoch


def test_state_dict_matches_torch_where_keys_overlap():
    """Every key we save is in torch's StepLR.state_dict() with an equal value, and a
    torch state loads into ours and continues torch's sequence."""
    ours_opt, torch_opt = make_optimizer([0.1, 0.2]), make_optimizer([0.1, 0.2])
    ours = StepLR(ours_opt, 4, 0.25)
    ref = torch.optim.lr_scheduler.StepLR(torch_opt, 4, 0.25)
    for _ in range(9):
        ours.step()
        torch_opt.step()
        ref.step()
    theirs = ref.state_dict()
    for key, value in ours.state_dict().items():
        assert theirs[key] == value, key
    other = StepLR(make_optimizer([1.0, 1.0]), 1)
    other.load_state_dict(theirs)
    for _ in range(10):
        other.step()
        torch_opt.step()
        ref.step()
        assert_close_lists(other.get_last_lr(), ref.get_last_lr())


def test_state_survives_torch_save(tmp_path):
    """The state is plain data: torch.save then torch.load(weights_only=True) returns it."""
    scheduler = StepLR(make_optimizer([0.1]), 5)
    scheduler.step()
    torch.save(scheduler.state_dict(), tmp_path / "s.pt")
    assert torch.load(tmp_path / "s.pt", weights_only=True) == scheduler.state_dict()


def test_get_last_lr_is_a_copy():
    """Mutating the returned list does not change the scheduler."""
    scheduler = StepLR(make_optimizer([0.1]), 5)
    scheduler.get_last_lr().append(1.0)
    assert scheduler.get_last_lr() == [0.1]


@pytest.mark.parametrize(
    ("step_size", "gamma", "words"),
    [
        (0, 0.1, "step_size"),
        (-3, 0.1, "step_size"),
        (2.5, 0.1, "step_size"),
        (True, 0.1, "step_size"),
        ("5", 0.1, "step_size"),
        (5, 0.0, "gamma"),
        (5, -0.1, "gamma"),
        (5, math.nan, "gamma"),
        (5, math.inf, "gamma"),
        (5, "0.1", "gamma"),
    ],
)
def test_bad_arguments(step_size, gamma, words):
    """A bad step_size or gamma raises PathMNISTError naming the argument."""
    with pytest.raises(PathMNISTError, match=words):
        StepLR(make_optimizer([0.1]), step_size, gamma)


@pytest.mark.parametrize("optimizer", [None, [0.1], torch.nn.Linear(2, 2)])
def test_not_an_optimizer(optimizer):
    """Anything but a torch optimizer raises PathMNISTError saying an optimizer is needed."""
    with pytest.raises(PathMNISTError, match="Optimizer"):
        StepLR(optimizer, 5)


def test_optimizer_without_param_groups():
    """An optimizer whose param groups were emptied raises PathMNISTError."""
    optimizer = make_optimizer([0.1])
    optimizer.param_groups.clear()
    with pytest.raises(PathMNISTError, match="parameter groups"):
        StepLR(optimizer, 5)


def test_bad_state():
    """A state missing keys, or with a different number of groups, raises PathMNISTError."""
    scheduler = StepLR(make_optimizer([0.1]), 5)
    with pytest.raises(PathMNISTError, match="missing last_epoch"):
        scheduler.load_state_dict({"step_size": 5, "gamma": 0.1, "base_lrs": [0.1]})
    state = StepLR(make_optimizer([0.1, 0.2]), 5).state_dict()
    with pytest.raises(PathMNISTError, match="param groups"):
        scheduler.load_state_dict(state)
