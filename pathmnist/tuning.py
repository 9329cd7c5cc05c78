"""Grid search over training hyperparameters, resumable, as the seed project tuned.

The seed searched Adam lr {1e-3, 3e-3}, SGD lr {1e-2, 3e-2} and batch size {64, 128}
for 3 epochs each on a stratified 20% subset of the training split, and kept the
configuration with the best validation accuracy. Here that is a plain loop over
`itertools.product` (no Optuna, no sklearn pipelines): `grid(space)` spells out the
trials in a fixed order, `grid_search` runs them with `training.fit`, appending one row
per finished trial to `results.csv`, so a second call skips what is already done.

Tested against `sklearn.model_selection.ParameterGrid` (same set of trials) and by
interrupting a search and resuming it (tests/test_tuning.py).
"""

import csv
import dataclasses
import itertools
import json
import time
from pathlib import Path

from pathmnist.errors import PathMNISTError
from pathmnist.io import write_text
from pathmnist.training import TrainConfig, fit

# The seed's search space. A list of sub-grids, because the learning rates depend on the
# optimizer: SGD needs a larger step than Adam (the seed's choice, usual for both).
DEFAULT_SPACE = [
    {"optimizer": ["adam"], "lr": [1e-3, 3e-3], "batch_size": [64, 128]},
    {"optimizer": ["sgd"], "lr": [1e-2, 3e-2], "batch_size": [64, 128]},
]

RESULT_COLUMNS = ["trial", "params", "best_val_acc", "best_val_loss", "best_epoch", "seconds"]


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
            if (
                isinstance(values, str | bytes)
                or not hasattr(values, "__iter__")
                or not list(values)
            ):
                raise PathMNISTError(
                    f"the search space gives {key!r} the value {values!r}; give a non-empty "
                    "list of values to try."
                )
        keys = list(sub)
        trials += [
            dict(zip(keys, combo, strict=True)) for combo in itertools.product(*sub.values())
        ]
    return trials


def trial_key(params) -> str:
    """A canonical string for one trial's parameters: how results.csv rows are matched."""
    return json.dumps(params, sort_keys=True)


def read_results(path) -> list[dict]:
    """Read results.csv into dicts with typed values (an absent file reads as no rows)."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and set(rows[0]) != set(RESULT_COLUMNS):
        raise PathMNISTError(
            f"{path} is not a results file of this grid search (columns {sorted(rows[0])}); "
            "choose another --out folder or delete it."
        )
    return [
        {
            "trial": int(r["trial"]),
            "params": json.loads(r["params"]),
            "best_val_acc": float(r["best_val_acc"]),
            "best_val_loss": float(r["best_val_loss"]),
            "best_epoch": int(r["best_epoch"]),
            "seconds": float(r["seconds"]),
        }
        for r in rows
    ]


def _append_result(path, row) -> None:
    """Append one finished trial to results.csv, rewriting the file atomically."""
    rows = [*read_results(path), row]
    lines = [",".join(RESULT_COLUMNS)]
    for r in rows:
        params = trial_key(r["params"]).replace('"', '""')
        lines.append(
            f'{r["trial"]},"{params}",{r["best_val_acc"]!r},{r["best_val_loss"]!r},'
            f"{r['best_epoch']},{r['seconds']:.3f}"
        )
    write_text(path, "\n".join(lines) + "\n")


def rank(results) -> list[dict]:
    """Sort trials best first: highest best val accuracy, ties broken by lower val loss."""
    return sorted(results, key=lambda r: (-r["best_val_acc"], r["best_val_loss"], r["trial"]))


def grid_search(space, train, val, out_dir, epochs=3, base=None, resume=True, quiet=False):
    """Train every trial of `space` on `train`, validate on `val`, and rank them.

    Each trial is `base` (default `TrainConfig()`) with the trial's parameters and
    `epochs`; it trains in `out_dir/trial_NN/` (its history.csv is kept; its checkpoints
    are deleted once the trial is recorded, as 8 ResNet-18s would take 700 MB). With
    `resume=True`, trials already in `out_dir/results.csv` are skipped and a trial that
    was interrupted continues from its last.pt. Returns the ranked list of result rows.
    """
    out_dir = Path(out_dir)
    results_path = out_dir / "results.csv"
    base = base or TrainConfig()
    trials = grid(space)
    if not resume and results_path.exists():
        raise PathMNISTError(
            f"{results_path} already holds results; pass resume=True (--resume) to continue "
            "that search, or choose another output folder."
        )
    done = {trial_key(r["params"]) for r in read_results(results_path)}
    for i, params in enumerate(trials):
        if trial_key(params) in done:
            continue
        config = dataclasses.replace(base, epochs=epochs, **params)
        trial_dir = out_dir / f"trial_{i:02d}"
        if not quiet:
            print(f"trial {i + 1}/{len(trials)}: {params}")
        start = time.perf_counter()
        history = fit(
            config,
            train,
            val,
            trial_dir,
            resume=(trial_dir / "last.pt").exists(),
            quiet=quiet,
        )
        best = max(history.rows, key=lambda r: (r["val_acc"], -r["val_loss"]))
        _append_result(
            results_path,
            {
                "trial": i,
                "params": params,
                "best_val_acc": best["val_acc"],
                "best_val_loss": min(r["val_loss"] for r in history.rows),
                "best_epoch": best["epoch"],
                "seconds": time.perf_counter() - start,
            },
        )
        for name in ("last.pt", "best.pt"):
            (trial_dir / name).unlink(missing_ok=True)
    return rank(read_results(results_path))


def format_results(results) -> str:
    """A Markdown table of ranked trials: rank, parameters, best val acc and loss."""
    keys = sorted({k for r in results for k in r["params"]})
    lines = [
        "| rank | " + " | ".join(keys) + " | best val acc | best val loss | epoch | s |",
        "|" + "---|" * (len(keys) + 5),
    ]
    for i, r in enumerate(results, 1):
        cells = [str(r["params"].get(k, "")) for k in keys]
        lines.append(
            f"| {i} | " + " | ".join(cells) + f" | {r['best_val_acc']:.4f} | "
            f"{r['best_val_loss']:.4f} | {r['best_epoch']} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)
