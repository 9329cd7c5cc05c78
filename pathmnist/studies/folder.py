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
import math
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
    """Read results.csv into dicts with typed values (an absent file reads as no rows).

    A last row cut mid-line (no newline at its end: a hand edit, a copy cut short) is
    dropped, so its run is trained again, never kept half-read; any other row that is short,
    not a number, or not finite (`nan`) is refused with one sentence."""
    path = Path(path)
    if not path.exists():
        return []
    fix = "choose another --out, or pass --overwrite to start the search anew"
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise PathMNISTError(f"{path} is unreadable ({e}); {fix}.") from None
    lines = text.splitlines(keepends=True)
    if len(lines) > 1 and not lines[-1].endswith("\n"):
        lines = lines[:-1]  # Cut mid-line: that run is trained again.
    reader = csv.DictReader(lines)
    if reader.fieldnames != RESULT_COLUMNS:
        raise PathMNISTError(f"{path} is not a results file of this search; {fix}.")
    rows = []
    for n, r in enumerate(reader, start=2):
        try:
            row = {k: _number(k, r[k]) for k in RESULT_COLUMNS[1:]}
            row = {"params": json.loads(r["params"]), **row}
            if not isinstance(row["params"], dict) or None in r.values() or None in r:
                raise ValueError("a cell is missing or extra")
        except (ValueError, TypeError) as e:
            raise PathMNISTError(f"{path} line {n} is damaged ({e}); {fix}.") from None
        rows.append(row)
    return rows


def _number(column: str, text):
    """One results.csv cell as its type; `nan`, `inf` and non-numbers are refused."""
    value = float(text) if column in ("val_acc", "val_loss", "seconds") else int(text)
    if not math.isfinite(value):
        raise ValueError(f"{column} is {text}, not a finite number")
    return value


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

    def __init__(self, out_dir, train, val, base, key: dict, quiet: bool, rows=None):
        self.out, self.train, self.val, self.base, self.quiet = out_dir, train, val, base, quiet
        self.results_path = self.out / "results.csv"
        self.rows = read_results(self.results_path) if rows is None else list(rows)
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


def check_configs(base, trials, budgets) -> None:
    """Validate every run the search will make (each trial at each budget) before its
    folder exists: a bad value in the space, or a budget past TrainConfig's limits, is
    refused now, not after search.json is written."""
    for params in trials:
        for epochs in budgets:
            try:
                dataclasses.replace(base, epochs=epochs, **params).validate()
            except TypeError as e:  # A name that is not a field (expand checks it, too).
                raise PathMNISTError(f"the search space does not fit TrainConfig ({e}).") from None


def _check_rows(path, rows, key, budgets) -> None:
    """Refuse rows that are not runs of this search (a hand edit, another search's file)."""
    seeds = range(key["base"]["seed"], key["base"]["seed"] + key["repeats"])
    space = {trial_key(p) for p in key["space"]}
    for n, r in enumerate(rows, start=2):
        if (
            trial_key(r["params"]) not in space
            or r["seed"] not in seeds
            or r["epochs"] not in budgets
        ):
            raise PathMNISTError(
                f"{path} line {n} is not a run of this search (params {r['params']}, "
                f"{r['epochs']} epochs, seed {r['seed']}); choose another --out."
            )


def _check_trials(out_dir) -> None:
    """Every trial's last.pt (only unfinished trials keep one) must load, format and
    checksum, before the search writes anything: a damaged one is refused now."""
    for last in sorted(Path(out_dir).glob("*/epochs=*_seed=*/last.pt")):
        checkpoints.load(last, "pass --overwrite to start the search anew")


def study_key(train, val, base, key) -> dict:
    """The search's full key: `key` (strategy, space, budgets) with the base configuration
    and the data's identity added."""
    return {
        **key,
        "base": base.to_dict(),
        "data": {"train": checkpoints.data_identity(train), "val": checkpoints.data_identity(val)},
    }


def check_key(out_dir, key, resume) -> dict | None:
    """Refuse a resume whose full key differs from the one in out_dir/search.json (or
    whose search.json is unreadable or not a key); return the saved key (None if new)."""
    if not resume:
        return None
    path = out_dir / "search.json"
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise PathMNISTError(f"{path} is unreadable ({e}); choose another --out.") from None
    if not isinstance(saved, dict):
        raise PathMNISTError(f"{path} holds a {type(saved).__name__}, not a search key.")
    changed = sorted(k for k in set(saved) | set(key) if saved.get(k) != key.get(k))
    if changed:
        raise PathMNISTError(
            f"cannot resume the search in {out_dir}: its {', '.join(changed)} differ from "
            "this command's (subset, seed, epochs, augmentation, data, repeats or "
            "strategy); rerun with the same flags, or start anew with --overwrite."
        )
    return saved


def open_study(out_dir, train, val, base, key, resume, overwrite, quiet, budgets=None) -> Search:
    """Check the run flags, the search key, results.csv and every unfinished trial's
    last.pt, then (only then) open or start the search folder. `budgets`: the epochs a
    row may have (default: the key's "epochs")."""
    out_dir = rundir.check_start(out_dir, resume, overwrite, resume_file="search.json")
    key = study_key(train, val, base, key)
    saved, rows = check_key(out_dir, key, resume), []
    if resume:
        rows = read_results(out_dir / "results.csv")
        _check_rows(out_dir / "results.csv", rows, key, budgets or {key.get("epochs")})
        _check_trials(out_dir)
    rundir.start(out_dir, resume, overwrite, resume_file="search.json")
    if saved != key:  # A resume keeps the file as it was, byte for byte.
        write_json(out_dir / "search.json", key)
    return Search(out_dir, train, val, base, key, quiet, rows)
