"""Successive halving: give every candidate a little resource (epochs), keep the best
1/eta, give the survivors eta times as much, and repeat (Jamieson & Talwalkar 2016,
"Non-stochastic best arm identification and hyperparameter optimization"; it is the inner
loop of Hyperband, Li et al. 2018).

The schedule follows scikit-learn's HalvingGridSearchCV (_search_successive_halving.py,
aggressive_elimination=False) rule for rule:

- rounds needed to get below eta candidates: n_required = 1 + floor(log_eta(n_candidates));
- rounds the resources allow: n_possible = 1 + floor(log_eta(max_resource // min_resource));
- n_rounds = min(n_required, n_possible); round i gives each candidate
  min(eta**i * min_resource, max_resource), and keeps ceil(n_i / eta) candidates, so
  n_{i+1} = ceil(n_i / eta).

The last round therefore runs with eta**(n_rounds-1) * min_resource, which may be less
than max_resource (the min is a guard that never binds); max_resource=None means no cap
(n_rounds = n_required). One difference: sklearn takes floor(math.log(n, eta)) in floats,
which rounds log(243, 3) to 4.999... and so drops a round at some exact powers of eta
(below 5000 candidates: 243 with eta=3 and 1000 with eta=10);
here floor(log) is computed in integers, so 243 candidates with eta=3 get the 6 rounds
that sklearn's own comment asks for ("the last iteration evaluates less than `factor`
candidates").

Tested in tests/test_halving.py: `halving_schedule` against the `n_candidates_` and
`n_resources_` of a fitted HalvingGridSearchCV; `successive_halving` with noise-free fake
scores (the best candidate always wins, calls and compute add up).
"""

import math
import numbers
from collections.abc import Callable, Sequence
from typing import NamedTuple

from pathmnist import checks
from pathmnist.checks import whole
from pathmnist.config import TrainConfig, check_seeds
from pathmnist.errors import PathMNISTError
from pathmnist.studies.folder import check_configs, open_study
from pathmnist.studies.grid import expand, summarize
from pathmnist.training import ddp, rundir


class Evaluation(NamedTuple):
    """One call of `evaluate`: candidate `candidate` (an index into the candidates) was
    given `resource` in round `round` and scored `score`."""

    round: int
    resource: int
    candidate: int
    score: float


class HalvingResult(NamedTuple):
    """Every evaluation in call order, and the index of the winning candidate."""

    records: list[Evaluation]
    winner: int

    @property
    def compute(self) -> int:
        """Total resource spent: the sum of `resource` over all evaluations."""
        return sum(r.resource for r in self.records)


def _floor_log(value: int, base: int) -> int:
    """floor(log_base(value)) for value >= 1, in integers (no float rounding)."""
    k = 0
    while base ** (k + 1) <= value:
        k += 1
    return k


def _check(eta, min_resource, max_resource) -> tuple[int, int, int | None]:
    eta = whole(eta, "eta", low=2)
    min_resource = whole(min_resource, "min_resource", low=1)
    if max_resource is not None:
        max_resource = whole(max_resource, "max_resource", low=1)
        if max_resource < min_resource:
            raise PathMNISTError(
                f"max_resource={max_resource} is below min_resource={min_resource}; pass a "
                "max_resource of at least min_resource, or None for no cap."
            )
    return eta, min_resource, max_resource


def halving_schedule(
    n_candidates, eta=3, min_resource=1, max_resource=None
) -> list[tuple[int, int]]:
    """[(candidates in the round, resource per candidate), ...], one pair per round."""
    n = whole(n_candidates, "n_candidates", low=1)
    eta, min_resource, max_resource = _check(eta, min_resource, max_resource)
    n_rounds = 1 + _floor_log(n, eta)  # sklearn's n_required_iterations
    if max_resource is not None:  # sklearn's n_possible_iterations
        n_rounds = min(n_rounds, 1 + _floor_log(max_resource // min_resource, eta))
    schedule = []
    for i in range(n_rounds):
        resource = eta**i * min_resource
        if max_resource is not None:
            resource = min(resource, max_resource)
        schedule.append((n, resource))
        n = math.ceil(n / eta)  # The survivors: the best ceil(n / eta).
    return schedule


def _rank_key(record: Evaluation) -> tuple[bool, float, int]:
    """Sort key, best first: higher score, then earlier candidate; NaN scores last (as
    sklearn's _top_k puts them), so a diverged candidate is dropped, not crowned."""
    nan = math.isnan(record.score)
    return nan, 0.0 if nan else -record.score, record.candidate


def successive_halving(
    candidates: Sequence,
    evaluate: Callable[[object, int], float],
    eta=3,
    min_resource=1,
    max_resource=None,
    on_round: Callable[[list[Evaluation]], None] | None = None,
) -> HalvingResult:
    """Run successive halving over `candidates` and return every evaluation and the winner.

    `evaluate(candidate, resource)` returns a score, higher is better (e.g. trains the
    candidate for `resource` epochs and returns its validation accuracy). Each round
    evaluates the survivors in candidate order with the round's resource, from the
    schedule of `halving_schedule`, and keeps the best ceil(n / eta), ties going to the
    earlier candidate. `on_round(records)` is called after each round with its records.
    The winner is the best of the last round.
    """
    if isinstance(candidates, str | bytes) or not isinstance(candidates, Sequence):
        raise PathMNISTError(
            f"candidates must be a list, got {type(candidates).__name__}; pass a list of "
            "configurations."
        )
    if len(candidates) == 0:
        raise PathMNISTError("candidates is empty; pass at least one configuration to tune.")
    schedule = halving_schedule(len(candidates), eta, min_resource, max_resource)
    alive = list(range(len(candidates)))
    records: list[Evaluation] = []
    for round_, (_, resource) in enumerate(schedule):
        results = []
        for index in alive:
            score = evaluate(candidates[index], resource)
            if not isinstance(score, numbers.Real) or isinstance(score, bool):
                raise PathMNISTError(
                    f"evaluate returned {score!r} for candidate {index}; it must return a "
                    "number, higher is better."
                )
            results.append(Evaluation(round_, resource, index, float(score)))
        records.extend(results)
        if on_round is not None:
            on_round(list(results))
        keep = sorted(results, key=_rank_key)[: math.ceil(len(alive) / eta)]
        alive = sorted(r.candidate for r in keep)  # Back to candidate order.
    winner = min(results, key=_rank_key).candidate
    return HalvingResult(records, winner)


def halving_search(
    space,
    train,
    val,
    out_dir,
    eta=3,
    min_epochs=1,
    max_epochs=9,
    base=None,
    repeats=1,
    resume=False,
    overwrite=False,
    quiet=False,
):
    """Successive halving over the trials of `space` with epochs as the budget; returns
    (ranking of the last round, the per-round records of `successive_halving`)."""
    if ddp.world_size() > 1:
        raise PathMNISTError(
            "successive halving decides each round from the last, one run at a time; run it "
            "without torchrun, or use --strategy grid, whose trials torchrun shares out."
        )
    base = (base or TrainConfig()).validate()
    trials = expand(space)
    repeats = checks.whole(repeats, "repeats", 1)
    check_seeds(base.seed, repeats)  # Every trial's last seed, before the folder exists.
    key = {
        "strategy": "halving",
        "space": trials,
        "eta": eta,
        "min_epochs": min_epochs,
        "max_epochs": max_epochs,
        "repeats": repeats,
    }
    schedule = halving_schedule(len(trials), eta, min_epochs, max_epochs)  # Checks them.
    check_configs(base, trials, sorted({epochs for _, epochs in schedule}))
    with rundir.lock(out_dir):
        budgets = {epochs for _, epochs in schedule}
        search = open_study(out_dir, train, val, base, key, resume, overwrite, quiet, budgets)

        def evaluate(params, epochs):
            runs = [search.run(params, epochs, base.seed + r) for r in range(repeats)]
            return sum(r["val_acc"] for r in runs) / len(runs)

        result = successive_halving(trials, evaluate, eta, min_epochs, max_epochs)
        return summarize(search.rows), result
