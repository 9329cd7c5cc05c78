"""One study folder: its key file (search.json), its results.csv rows, and running one
trial into its own sub-folder, resumable and locked.

A study records what it searches (the base configuration, the data's identity, the
space, the budgets, the repeats and the strategy) in search.json; a resume whose key
differs is refused. results.csv has one row per finished (trial, epochs, seed) run;
finished runs are never trained again; a run killed mid-way continues from its last.pt.
Trial folders are named by their parameters: `adam_lr=0.001_batch_size=64/epochs=3_seed=0`.
Under torchrun the runs are shared out (`Search.run_all`, `training.ddp.map_jobs`): each
rank trains its runs alone, and rank 0 alone writes search.json and results.csv.

Tested in tests/test_grid.py.
"""

import csv
import dataclasses
import io
import json
import time
from pathlib import Path

from pathmnist.errors import PathMNISTError
from pathmnist.files import write_json, write_text
from pathmnist.training import checkpoints, ddp, rundir
from pathmnist.training.fit import fit
from pathmnist.training.history import best_row

# One row per finished run; val_acc and val_loss are the best epoch's (by the monitor).
RESULT_COLUMNS = ["params", "epochs", "seed", "val_acc", "val_loss", "best_epoch", "seconds"]


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


class Search:
    """A search folder: its search.json key, its results.csv, and running one trial."""

    def __init__(self, out_dir, train, val, base, key: dict, quiet: bool):
        self.out, self.train, self.val, self.base, self.quiet = out_dir, train, val, base, quiet
        self.results_path = self.out / "results.csv"
        self.rows = read_results(self.results_path)
        self.key = key

    def _done(self, params, epochs, seed):
        for r in self.rows:
            if (trial_key(r["params"]), r["epochs"], r["seed"]) == (
                trial_key(params),
                epochs,
                seed,
            ):
                return r
        return None

    def run(self, params, epochs: int, seed: int) -> dict:
        """Train (or look up) one run of `params` for `epochs` with `seed`; its row."""
        row = self._done(params, epochs, seed)
        if row is None:
            row = self._train(params, epochs, seed)
            self._record(row)
        return row

    def run_all(self, runs) -> None:
        """Every (params, epochs, seed) of `runs` not yet done; under torchrun run i of the
        rest on rank i % N (each in one process), rank 0 recording the rows in order."""
        todo = [r for r in runs if self._done(*r) is None]
        ddp.map_jobs(lambda run: self._train(*run), todo, self._record)

    def _record(self, row) -> None:
        self.rows.append(row)
        _write_results(self.results_path, self.rows)

    def _train(self, params, epochs: int, seed: int) -> dict:
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
        for name in ("last.pt", "best.pt"):  # 8 trials x 2 ResNet-18s would take 1.4 GB.
            (trial_dir / name).unlink(missing_ok=True)
        return row


def open_study(out_dir, train, val, base, key, resume, overwrite, quiet) -> Search:
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
