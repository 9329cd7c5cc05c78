"""Grid search: the seed's grid, repeated over seeds.

The seed searched Adam lr {1e-3, 3e-3}, SGD lr {1e-2, 3e-2} and batch size {64, 128} for 3
epochs each on a stratified 20% subset of the training split, one run each, and kept the
best validation accuracy. Here `expand(space)` spells out the trials (a plain loop over
`itertools.product`), and every trial runs with `repeats` seeds, because one run of each
cannot tell a better recipe from a lucky seed: trials are ranked by their mean validation
accuracy, with a t interval over the seeds (`stats.mean_interval`).

A trial's score is read at its best epoch by the run's monitor (`history.best_row`), so
its validation accuracy and loss come from the same epoch.

Under torchrun the runs are shared out over the processes (`Search.run_all`), with the
same rows in the same order as one process.

Tested in tests/test_grid.py (the grid against sklearn's ParameterGrid, interrupted
searches resumed, changed bases refused).
"""

import contextlib
import dataclasses
import itertools
from pathlib import Path

from pathmnist import checks
from pathmnist.config import TrainConfig, check_seeds
from pathmnist.errors import PathMNISTError
from pathmnist.evaluation import stats
from pathmnist.studies.folder import Search, check_configs, open_study, trial_key
from pathmnist.training import ddp, rundir

# The seed's search space. A list of sub-grids, because the learning rates depend on the
# optimizer: SGD needs a larger step than Adam (the seed's choice, usual for both).
DEFAULT_SPACE = [
    {"optimizer": ["adam"], "lr": [1e-3, 3e-3], "batch_size": [64, 128]},
    {"optimizer": ["sgd"], "lr": [1e-2, 3e-2], "batch_size": [64, 128]},
]


STRATEGIES = ("grid", "halving")


def expand(space):
    """Return every trial of `space` as a list of dicts, in a fixed, documented order.

    `space` is a dict of lists, or a list of such dicts (sub-grids). Order: sub-grids in
    the order given; inside one, `itertools.product` over the keys in insertion order, so
    the last key varies fastest. The seed's space gives 8 trials:
    adam 1e-3 64, adam 1e-3 128, adam 3e-3 64, adam 3e-3 128, sgd 1e-2 64, ...
    """
    subgrids = [space] if isinstance(space, dict) else list(space)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    trials = []
    for sub in subgrids:
        if not isinstance(sub, dict) or not sub:
            raise PathMNISTError(
                f"a search space must be a dict of lists (or a list of them), got {sub!r}; "
                'write it like {"lr": [1e-3, 3e-3], "batch_size": [64, 128]}.'
            )
        for key, values in sub.items():
            if key not in fields:
                raise PathMNISTError(
                    f"the search space names {key!r}, which is not a TrainConfig field; "
                    f"use one of {sorted(fields)}."
                )
            if isinstance(values, str | bytes) or not hasattr(values, "__iter__") or not values:
                raise PathMNISTError(
                    f"the search space gives {key!r} the value {values!r}; give a non-empty "
                    "list of values to try."
                )
        keys = list(sub)
        trials += [dict(zip(keys, c, strict=True)) for c in itertools.product(*sub.values())]
    return trials


def summarize(rows) -> list[dict]:
    """One entry per (params, epochs): the mean over seeds with a 95% t interval, ranked
    best first by mean val accuracy (ties: lower mean val loss)."""
    groups = {}
    for r in rows:
        groups.setdefault((trial_key(r["params"]), r["epochs"]), []).append(r)
    out = []
    for (_, epochs), runs in groups.items():
        mean, low, high = stats.mean_interval([r["val_acc"] for r in runs])
        low, high = max(low, 0.0), min(high, 1.0)  # An accuracy cannot leave [0, 1].
        out.append(
            {
                "params": runs[0]["params"],
                "epochs": epochs,
                "n": len(runs),
                "seeds": [r["seed"] for r in runs],
                "val_acc": mean,
                "val_acc_low": low,
                "val_acc_high": high,
                "val_loss": sum(r["val_loss"] for r in runs) / len(runs),
                "seconds": sum(r["seconds"] for r in runs),
            }
        )
    return sorted(out, key=lambda s: (-s["epochs"], -s["val_acc"], s["val_loss"]))


def grid_search(
    space,
    train,
    val,
    out_dir,
    epochs=3,
    base=None,
    repeats=1,
    resume=False,
    overwrite=False,
    quiet=False,
) -> list[dict]:
    """Train every trial of `space` for `epochs` with `repeats` seeds (base.seed, +1, ...),
    validate on `val`, and return `summarize`'s ranking. Rows go to out_dir/results.csv."""
    base = (base or TrainConfig()).validate()
    trials = expand(space)
    repeats = checks.whole(repeats, "repeats", 1)
    check_seeds(base.seed, repeats)  # Every trial's last seed, before the folder exists.
    epochs = checks.whole(epochs, "epochs", 1)  # Before search.json is written, not per trial.
    check_configs(base, trials, [epochs])
    key = {"strategy": "grid", "space": trials, "epochs": epochs, "repeats": repeats}
    with contextlib.ExitStack() as held:

        def start():  # Rank 0 only, under torchrun; the others then read the same rows.
            held.enter_context(rundir.lock(out_dir))
            return open_study(out_dir, train, val, base, key, resume, overwrite, quiet)

        search = ddp.from_main(start, lambda: Search(Path(out_dir), train, val, base, key, True))
        search.run_all([(p, epochs, base.seed + r) for p in trials for r in range(repeats)])
        return summarize(search.rows)


def compute(rows, n_images: int) -> int:
    """Training compute of finished runs, in image-epochs (epochs x training images)."""
    return int(sum(r["epochs"] for r in rows) * n_images)
