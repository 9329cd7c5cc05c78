"""Hyperparameter search: the seed's grid, repeated over seeds, and successive halving;
resumable, and keyed on what it searches so a resume is the same search.

The seed searched Adam lr {1e-3, 3e-3}, SGD lr {1e-2, 3e-2} and batch size {64, 128} for 3
epochs each on a stratified 20% subset of the training split, one run each, and kept the
best validation accuracy. Here `grid(space)` spells out the trials (a plain loop over
`itertools.product`), and every trial runs with `repeats` seeds, because one run of each
cannot tell a better recipe from a lucky seed: trials are ranked by their mean validation
accuracy, with a t interval over the seeds (`stats.mean_interval`).

A trial's score is read at its best epoch by the run's monitor (`history.best_row`), so
its validation accuracy and loss come from the same epoch.

`search.json` records the base configuration, the epochs, the data's identity, the space,
the repeats and the strategy; `results.csv` has one row per finished (trial, epochs, seed)
run. A resume whose search.json differs is refused; finished runs are never trained again;
a run that was killed mid-way continues from its last.pt. Trial folders are named by their
parameters: `adam_lr=0.001_batch_size=64/epochs=3_seed=0`.

Successive halving (`halving_search`) trains every candidate for a few epochs, keeps the
best 1/eta, trains those for eta times more epochs (from scratch: each budget is its own
run, so a row of results.csv always means "this recipe trained for E epochs"), and so on.

Tested in tests/test_tuning.py (the grid against sklearn's ParameterGrid, the halving
schedule against HalvingGridSearchCV, interrupted searches resumed, changed bases refused).
"""

import csv
import dataclasses
import io
import itertools
import json
import time
from pathlib import Path

from pathmnist import checkpoints, checks, halving, rundir, stats
from pathmnist.config import TrainConfig
from pathmnist.errors import PathMNISTError
from pathmnist.history import best_row
from pathmnist.io import write_json, write_text
from pathmnist.training import fit

# The seed's search space. A list of sub-grids, because the learning rates depend on the
# optimizer: SGD needs a larger step than Adam (the seed's choice, usual for both).
DEFAULT_SPACE = [
    {"optimizer": ["adam"], "lr": [1e-3, 3e-3], "batch_size": [64, 128]},
    {"optimizer": ["sgd"], "lr": [1e-2, 3e-2], "batch_size": [64, 128]},
]
STRATEGIES = ("grid", "halving")
# One row per finished run; val_acc and val_loss are the best epoch's (by the monitor).
RESULT_COLUMNS = ["params", "epochs", "seed", "val_acc", "val_loss", "best_epoch", "seconds"]


def grid(space):
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


def trial_key(params) -> str:
    """A canonical string for one trial's parameters: how results.csv rows are matched."""
    return json.dumps(params, sort_keys=True)


def trial_name(params) -> str:
    """A folder name from the parameters, e.g. "adam_lr=0.001_batch_size=64"."""
    parts = [str(v) if k == "optimizer" else f"{k}={v}" for k, v in params.items()]
    return "_".join(parts).replace("/", "-").replace(" ", "")


def read_results(path) -> list[dict]:
    """Read results.csv into dicts with typed values (an absent file reads as no rows)."""
    path = Path(path)
    if not path.exists():
        return []
    fix = "choose another --out, or pass --overwrite to start the search anew"
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != RESULT_COLUMNS:
            raise PathMNISTError(f"{path} is not a results file of this search; {fix}.")
        try:
            return [
                {
                    "params": json.loads(r["params"]),
                    "epochs": int(r["epochs"]),
                    "seed": int(r["seed"]),
                    "val_acc": float(r["val_acc"]),
                    "val_loss": float(r["val_loss"]),
                    "best_epoch": int(r["best_epoch"]),
                    "seconds": float(r["seconds"]),
                }
                for r in reader
            ]
        except (ValueError, TypeError) as e:
            raise PathMNISTError(
                f"{path} holds a value that is not a number ({e}); {fix}."
            ) from None


def _write_results(path, rows) -> None:
    """Rewrite results.csv atomically with the stdlib csv writer."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, RESULT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "params": trial_key(r["params"]), "seconds": f"{r['seconds']:.3f}"})
    write_text(path, buffer.getvalue())


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


class Search:
    """A search folder: its search.json key, its results.csv, and running one trial."""

    def __init__(self, out_dir, train, val, base, key: dict, quiet: bool):
        self.out, self.train, self.val, self.base, self.quiet = out_dir, train, val, base, quiet
        self.results_path = self.out / "results.csv"
        self.rows = read_results(self.results_path)
        self.key = key

    def run(self, params, epochs: int, seed: int) -> dict:
        """Train (or look up) one run of `params` for `epochs` with `seed`; its row."""
        for r in self.rows:
            if (trial_key(r["params"]), r["epochs"], r["seed"]) == (
                trial_key(params),
                epochs,
                seed,
            ):
                return r
        config = dataclasses.replace(self.base, epochs=epochs, seed=seed, **params).validate()
        trial_dir = self.out / trial_name(params) / f"epochs={epochs}_seed={seed}"
        if not self.quiet:
            print(f"trial {params}, {epochs} epochs, seed {seed}")
        start = time.perf_counter()
        resume = (trial_dir / "last.pt").exists()  # Killed mid-trial: continue it.
        overwrite = not resume and rundir.holds_run(trial_dir)  # Killed before epoch 1.
        history = fit(
            config,
            self.train,
            self.val,
            trial_dir,
            resume=resume,
            overwrite=overwrite,
            quiet=self.quiet,
        )
        best = best_row(history.rows, config.monitor, config.min_delta) or history.rows[-1]
        row = {
            "params": params,
            "epochs": epochs,
            "seed": seed,
            "val_acc": best["val_acc"],
            "val_loss": best["val_loss"],
            "best_epoch": best["epoch"],
            "seconds": time.perf_counter() - start,
        }
        self.rows.append(row)
        _write_results(self.results_path, self.rows)
        for name in ("last.pt", "best.pt"):  # 8 trials x 2 ResNet-18s would take 1.4 GB.
            (trial_dir / name).unlink(missing_ok=True)
        return row


def _open(out_dir, train, val, base, key, resume, overwrite, quiet) -> Search:
    """Check the run flags and the search key, then open (or start) the search folder."""
    out_dir = rundir.check_start(out_dir, resume, overwrite, resume_file="search.json")
    key = {
        **key,
        "base": base.to_dict(),
        "data": {"train": checkpoints.data_identity(train), "val": checkpoints.data_identity(val)},
    }
    if resume:
        try:
            saved = json.loads((out_dir / "search.json").read_text())
        except (OSError, ValueError) as e:
            raise PathMNISTError(f"{out_dir / 'search.json'} is unreadable ({e}).") from None
        changed = sorted(k for k in set(saved) | set(key) if saved.get(k) != key.get(k))
        if changed:
            raise PathMNISTError(
                f"cannot resume the search in {out_dir}: its {', '.join(changed)} differ from "
                "this command's (subset, seed, epochs, augmentation, data, repeats or "
                "strategy); rerun with the same flags, or start anew with --overwrite."
            )
    rundir.start(out_dir, resume, overwrite, resume_file="search.json")
    write_json(out_dir / "search.json", key)
    return Search(out_dir, train, val, base, key, quiet)


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
    trials = grid(space)
    repeats = checks.whole(repeats, "repeats", 1)
    epochs = checks.whole(epochs, "epochs", 1)  # Before search.json is written, not per trial.
    key = {"strategy": "grid", "space": trials, "epochs": epochs, "repeats": repeats}
    with rundir.lock(out_dir):
        search = _open(out_dir, train, val, base, key, resume, overwrite, quiet)
        for params in trials:
            for r in range(repeats):
                search.run(params, epochs, base.seed + r)
        return summarize(search.rows)


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
    (ranking of the last round, the per-round records of `halving.successive_halving`)."""
    base = (base or TrainConfig()).validate()
    trials = grid(space)
    repeats = checks.whole(repeats, "repeats", 1)
    key = {
        "strategy": "halving",
        "space": trials,
        "eta": eta,
        "min_epochs": min_epochs,
        "max_epochs": max_epochs,
        "repeats": repeats,
    }
    halving.halving_schedule(len(trials), eta, min_epochs, max_epochs)  # Checks the numbers.
    with rundir.lock(out_dir):
        search = _open(out_dir, train, val, base, key, resume, overwrite, quiet)

        def evaluate(params, epochs):
            runs = [search.run(params, epochs, base.seed + r) for r in range(repeats)]
            return sum(r["val_acc"] for r in runs) / len(runs)

        result = halving.successive_halving(trials, evaluate, eta, min_epochs, max_epochs)
        return summarize(search.rows), result


def compute(rows, n_images: int) -> int:
    """Training compute of finished runs, in image-epochs (epochs x training images)."""
    return int(sum(r["epochs"] for r in rows) * n_images)
