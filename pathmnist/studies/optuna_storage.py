"""An Optuna study's storage and what is read back from it: `open_storage` opens any
database URL Optuna takes with heartbeats on and dead workers' trials retried; each
trial's records there; and, as the other strategies report them, results.csv rows (one
per trial, with its state and the epoch where it was pruned), the ranking of
`studies.grid.summarize`, and the compute spent in image-epochs.

Each trial records, after every epoch, its best epoch so far by the run's monitor
(`training.history.best_row`): the validation accuracy and loss of the same epoch, as a
grid trial's row. The storage is the record; results.csv is rewritten from it.

Tested in tests/test_optuna_search.py.
"""

import csv
import dataclasses
import io
import json
import time
import warnings
from pathlib import Path

from pathmnist.config import parse_augment
from pathmnist.errors import PathMNISTError
from pathmnist.files import write_text
from pathmnist.studies import grid
from pathmnist.training.history import best_row

try:
    import optuna
    import sqlalchemy

    # Trials that hold (or will hold) a place among the study's n_trials.
    DONE = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    LIVE = (*DONE, optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
except ImportError:  # require_optuna says how to install it.
    optuna = DONE = LIVE = None

# A worker writes a heartbeat every HEARTBEAT_INTERVAL seconds; a running trial without
# one for GRACE_PERIOD seconds belongs to a dead worker and is failed and retried. An
# epoch may take minutes, but the heartbeat runs in its own thread, so both stay short.
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 30
MAX_RETRY = 3  # A trial whose workers die three times in a row is not tried again.

COLUMNS = [
    "trial", "state", "params", "seed", "epochs", "pruned_at", "retry_of",
    "val_acc", "val_loss", "best_epoch", "seconds",
]  # fmt: skip


def redact(url: str) -> str:
    """The storage URL without its password (it goes into search.json and messages)."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the given --storage"


def require_optuna() -> None:
    """Raise one sentence when Optuna is not installed."""
    if optuna is None:
        raise PathMNISTError(
            "--strategy optuna needs Optuna and a database driver, which are not installed; "
            "install them with `pip install optuna 'psycopg[binary]'` (or `pip install -e .`)."
        )


def open_storage(url, heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=GRACE_PERIOD):
    """An Optuna RDBStorage on `url` with heartbeats and retries of dead workers' trials."""
    require_optuna()
    shown = redact(url)
    # SQLite: wait for a write lock instead of failing at once when two workers write.
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        for attempt in range(3):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return optuna.storages.RDBStorage(
                        url,
                        engine_kwargs={**kwargs, "pool_pre_ping": True},
                        heartbeat_interval=heartbeat_interval,
                        grace_period=grace_period,
                        heartbeat_stale_trial_callback=(
                            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
                        ),
                    )
            except sqlalchemy.exc.OperationalError as e:
                # Two processes creating the tables of a new database at once: one of
                # them finds a table "already exists"; opening again then succeeds.
                if "already exists" not in str(e) or attempt == 2:
                    raise
                time.sleep(0.5)
    except ImportError:
        raise PathMNISTError(
            f"the storage {shown} needs a database driver that is not installed; for "
            "PostgreSQL install it with `pip install 'psycopg[binary]'`."
        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PathMNISTError(
            f"cannot open the storage {shown} ({reason}); check --storage, e.g. "
            "postgresql+psycopg://user:password@host:5432/dbname."
        ) from None


def config_of(base, params, **changes):
    """`base` with a trial's parameters (augment given as a list of names)."""
    params = dict(params)
    if "augment" in params:
        params["augment"] = parse_augment(params["augment"])
    return dataclasses.replace(base, **params, **changes).validate()


def record(trial, rows, config, seconds) -> None:
    """Store a trial's progress after an epoch: epochs trained, its best epoch's metrics."""
    best = best_row(rows, config.monitor, config.min_delta) or rows[-1]
    trial.set_user_attr("epochs", len(rows))
    trial.set_user_attr("val_acc", best["val_acc"])
    trial.set_user_attr("val_loss", best["val_loss"])
    trial.set_user_attr("best_epoch", best["epoch"])
    trial.set_user_attr("seconds", seconds)


def trial_epochs(trial) -> int:
    """Epochs a trial trained (a killed one: those it reported before it died)."""
    return max(trial.user_attrs.get("epochs", 0), len(trial.intermediate_values))


def finished(trials, n_trials, budget=None) -> bool:
    """True when the study holds n_trials complete or pruned trials, or spent `budget`."""
    done = sum(t.state in DONE for t in trials)
    spent = sum(trial_epochs(t) for t in trials)
    return done >= n_trials or (budget is not None and spent >= budget)


def rows_of(trials) -> list[dict]:
    """One row per trial that trained (a trial failed by a race before training is left
    out), in trial order."""
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        if t.user_attrs.get("over_quota") or "params" not in t.user_attrs:
            continue
        a = t.user_attrs
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                "params": a["params"],
                "seed": a["seed"],
                "epochs": trial_epochs(t),
                "pruned_at": a.get("pruned_at", ""),
                "retry_of": t.system_attrs.get("failed_trial", ""),
                "val_acc": a.get("val_acc", float("nan")),
                "val_loss": a.get("val_loss", float("nan")),
                "best_epoch": a.get("best_epoch", ""),
                "seconds": a.get("seconds", 0.0),
            }
        )
    return rows


def write_results(path, trials) -> list[dict]:
    """Write results.csv (stdlib csv, atomically) from the study's trials; its rows."""
    rows = rows_of(trials)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "params": json.dumps(r["params"], sort_keys=True)})
    write_text(path, buffer.getvalue())
    return rows


def read_results(path) -> list[dict]:
    """Read an Optuna results.csv back into typed rows."""
    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != COLUMNS:
            raise PathMNISTError(f"{path} is not the results file of an Optuna search.")
        optional = lambda v, kind: kind(v) if v != "" else ""
        return [
            {
                "trial": int(r["trial"]),
                "state": r["state"],
                "params": json.loads(r["params"]),
                "seed": int(r["seed"]),
                "epochs": int(r["epochs"]),
                "pruned_at": optional(r["pruned_at"], int),
                "retry_of": optional(r["retry_of"], int),
                "val_acc": float(r["val_acc"]),
                "val_loss": float(r["val_loss"]),
                "best_epoch": optional(r["best_epoch"], int),
                "seconds": float(r["seconds"]),
            }
            for r in reader
        ]


def summarize(rows, max_epochs) -> list[dict]:
    """`grid.summarize` over the complete trials, each counted at its full budget of
    `max_epochs` (one stopped early by EarlyStopping included): a point TPE sampled
    several times is one entry, its trials' seeds pooled."""
    complete = [{**r, "epochs": max_epochs} for r in rows if r["state"] == "COMPLETE"]
    return grid.summarize(complete)


def compute(rows, n_images: int) -> int:
    """Training compute of every trial (pruned and failed ones too), in image-epochs."""
    return grid.compute(rows, n_images)
