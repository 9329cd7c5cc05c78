"""Automated tuning with Optuna (Akiba et al. 2019, "Optuna: a next-generation
hyperparameter optimization framework"), the tool the seed project names, on a shared
storage so that many worker processes, on one machine or many, tune one study.

The study lives in a database: by default an SQLite file in the run folder, or any URL
Optuna takes (PostgreSQL for many machines). Each worker asks the storage for a trial,
samples it with TPE (Bergstra et al. 2011), trains it with `training.fit.fit` into its
own sub-folder, and reports the validation accuracy after every epoch to the
successive-halving pruner (Li et al. 2020, ASHA: `studies.halving` run asynchronously),
which stops trials that fall outside the best 1/eta at a rung. Workers send heartbeats;
a trial whose worker died is failed by the next worker that looks and retried with the
same parameters (`RetryHeartbeatStaleTrialCallback`). A study finishes exactly
`n_trials` trials (complete or pruned), however many workers share it.

The spaces are `studies.optuna_space`'s. The run folder's search.json and the study's own
attributes hold the key (`studies.folder.study_key`): another space, data or base is
refused. Results, summaries and compute: `studies.optuna_storage`.

Tested in tests/test_optuna_search.py: the seed space against the grid (Optuna's
BruteForceSampler visits exactly its 8 points), two workers on SQLite and on PostgreSQL,
a worker killed with SIGKILL, reruns and refusals, the same trials from the same seed.
"""

import dataclasses
import multiprocessing
import os
import socket
import sys
import time
import warnings

from pathmnist import checks
from pathmnist.config import MAX_SEED, TrainConfig
from pathmnist.errors import PathMNISTError
from pathmnist.files import write_json
from pathmnist.studies import folder, optuna_space, optuna_storage
from pathmnist.training import rundir
from pathmnist.training.fit import fit

try:  # A dependency (setup.py); an install without it gets one sentence, not a traceback.
    import optuna
except ImportError:
    optuna = None

DB_NAME = "optuna.db"  # The default storage: sqlite:///<run folder>/optuna.db.
STUDY_NAME = "pathmnist"


@dataclasses.dataclass
class Worker:
    """What a worker process needs besides the data (picklable, for spawned workers)."""

    url: str
    study: str
    out: str
    n_trials: int
    space: str
    min_epochs: int
    max_epochs: int
    eta: int
    base: TrainConfig
    budget: int | None = None  # Trial-epochs over the whole study; None: no cap.
    quiet: bool = False
    heartbeat_interval: int = optuna_storage.HEARTBEAT_INTERVAL
    grace_period: int = optuna_storage.GRACE_PERIOD
    threads: int = 0  # torch threads; 0 leaves torch's choice.

    def sampler(self, index: int):
        """TPE seeded from the base seed (worker i: seed + i, so workers draw apart);
        random for the first third of the trials (2 to 10), as TPE needs a history."""
        startup = min(10, max(2, self.n_trials // 3))
        seed = (self.base.seed + index) % (MAX_SEED + 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                n_startup_trials=startup, seed=seed, constant_liar=True
            )

    def pruner(self):
        """Asynchronous successive halving: rungs at min_epochs * eta**k epochs."""
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=self.min_epochs, reduction_factor=self.eta, min_early_stopping_rate=0
        )


class _OverQuota(Exception):
    """A trial started by a race after the study had its n_trials: failed, never trained."""


def _objective(spec: Worker, train, val):
    def objective(trial):
        trials = trial.study.get_trials(deepcopy=False)
        live = sorted(t.number for t in trials if t.state in optuna_storage.LIVE)
        if trial.number not in live[: spec.n_trials]:
            trial.set_user_attr("over_quota", True)
            raise _OverQuota(f"trial {trial.number} is beyond the study's {spec.n_trials}")
        frozen = next(t for t in trials if t.number == trial.number)
        first = frozen.system_attrs.get("failed_trial", trial.number)  # A retry's original.
        params = optuna_space.suggest(trial, spec.space)
        seed = (spec.base.seed + first) % (MAX_SEED + 1)  # Each trial its own seed.
        trial.set_user_attr("params", params)
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        config = optuna_storage.config_of(spec.base, params, epochs=spec.max_epochs, seed=seed)
        trial_dir = rundir.check_out(spec.out) / f"trial_{trial.number:04d}"
        rows, start = [], time.perf_counter()

        def report(row):  # After every epoch: record it, and let the pruner decide.
            rows.append(row)
            optuna_storage.record(trial, rows, config, time.perf_counter() - start)
            trial.report(row["val_acc"], row["epoch"])
            # A trial that reached its last epoch is complete, whatever its rung says.
            if row["epoch"] < config.epochs and trial.should_prune():
                trial.set_user_attr("pruned_at", row["epoch"])
                raise optuna.TrialPruned(f"pruned after epoch {row['epoch']}")

        if not spec.quiet:
            print(f"trial {trial.number}: {params} (seed {seed})", flush=True)
        try:
            fit(config, train, val, trial_dir, quiet=True, on_epoch=report)
        except PathMNISTError as e:  # E.g. a learning rate that made the loss diverge.
            trial.set_user_attr("error", str(e))
            print(f"trial {trial.number} failed: {e}", file=sys.stderr, flush=True)
            raise
        finally:
            for name in ("last.pt", "best.pt"):  # Trials x 2 ResNet-18s would fill a disk.
                (trial_dir / name).unlink(missing_ok=True)
        return trial.user_attrs["val_acc"]

    return objective


def work(spec: Worker, train, val, index: int = 0) -> None:
    """One worker: run trials of the study until it has `n_trials` finished (or spent its
    budget), waiting while other workers' trials are running in case one of them dies."""
    optuna_storage.require_optuna()
    if spec.threads:
        import torch

        torch.set_num_threads(spec.threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # Trials print their own lines.
    storage = optuna_storage.open_storage(spec.url, spec.heartbeat_interval, spec.grace_period)
    study = optuna.load_study(
        study_name=spec.study, storage=storage, sampler=spec.sampler(index), pruner=spec.pruner()
    )
    objective = _objective(spec, train, val)
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # Retries the trials of dead workers.
        trials = study.get_trials(deepcopy=False)
        if optuna_storage.finished(trials, spec.n_trials, spec.budget):
            return
        errors = [t for t in trials if "error" in t.user_attrs]
        if len(errors) >= spec.n_trials:
            raise PathMNISTError(
                f"{len(errors)} trials failed, the last with: {errors[-1].user_attrs['error']}"
            )
        waiting = any(t.state == optuna.trial.TrialState.WAITING for t in trials)
        live = sum(t.state in optuna_storage.LIVE for t in trials)
        if live >= spec.n_trials and not waiting:  # The rest is running elsewhere.
            time.sleep(min(spec.heartbeat_interval, 2))
            continue
        study.optimize(objective, n_trials=1, catch=(_OverQuota, PathMNISTError))


def _spawned(spec, train, val, index):
    """A spawned worker's entry: a user error prints one sentence and exits 2."""
    try:
        work(spec, train, val, index)
    except PathMNISTError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def _start_study(spec: Worker, key, overwrite):
    """Create the study, or join it when its key (less the storage) matches; with
    `overwrite`, delete it first."""
    storage = optuna_storage.open_storage(spec.url, spec.heartbeat_interval, spec.grace_period)
    names = {
        s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
    }
    shared = {k: v for k, v in key.items() if k != "storage"}
    if spec.study in names and overwrite:
        optuna.delete_study(study_name=spec.study, storage=storage)
    elif spec.study in names:
        saved = optuna.load_study(study_name=spec.study, storage=storage).user_attrs
        changed = sorted(k for k in set(shared) | set(saved.get("key", {})) if
                         saved.get("key", {}).get(k) != shared.get(k))  # fmt: skip
        if changed:
            raise PathMNISTError(
                f"the study {spec.study!r} in {optuna_storage.redact(spec.url)} was started "
                f"with another {', '.join(changed)}; use the same flags, another --study, "
                "or --overwrite to replace it."
            )
    return storage, shared


def optuna_search(
    train,
    val,
    out_dir,
    n_trials=8,
    base=None,
    space="seed",
    min_epochs=3,
    max_epochs=9,
    eta=3,
    workers=1,
    storage=None,
    study=None,
    budget=None,
    resume=False,
    overwrite=False,
    quiet=False,
    heartbeat_interval=optuna_storage.HEARTBEAT_INTERVAL,
    grace_period=optuna_storage.GRACE_PERIOD,
):
    """Tune `space` with TPE and successive-halving pruning until the study holds
    `n_trials` finished trials; return (results rows, the Optuna study).

    Trials run from `min_epochs` to `max_epochs` epochs (rungs at min_epochs * eta**k).
    `workers` processes share the study (1: this process); `storage` is any Optuna URL
    (default: SQLite in out_dir); `budget` stops new trials once all trials together have
    trained that many epochs. results.csv is written from the storage at the end.
    """
    optuna_storage.require_optuna()
    base = (base or TrainConfig()).validate()
    n_trials, workers = checks.whole(n_trials, "--trials", 1), checks.whole(workers, "--workers", 1)
    min_epochs, max_epochs = (
        checks.whole(min_epochs, "epochs", 1),
        checks.whole(max_epochs, "max_epochs", 1),
    )
    eta = checks.whole(eta, "eta", 2)
    if max_epochs < min_epochs:
        raise PathMNISTError(
            f"--max-epochs {max_epochs} is below --epochs {min_epochs}; trials run from "
            "--epochs to --max-epochs, so raise --max-epochs."
        )
    budget = None if budget is None else checks.whole(budget, "--budget", 1)
    key = {"strategy": "optuna", "space": optuna_space.space_key(space),
           "study": study or STUDY_NAME, "min_epochs": min_epochs, "max_epochs": max_epochs,
           "eta": eta}  # fmt: skip
    if storage is not None:  # A bad URL or an absent server: refused before any file.
        optuna_storage.open_storage(storage, heartbeat_interval, grace_period)
    with rundir.lock(out_dir) as out:
        out = rundir.check_start(out, resume, overwrite, resume_file="search.json")
        url = storage or f"sqlite:///{(out / DB_NAME).resolve()}"
        key = folder.study_key(train, val, base, {**key, "storage": optuna_storage.redact(url)})
        folder.check_key(out, key, resume)
        spec = Worker(url, key["study"], str(out), n_trials, space, min_epochs, max_epochs, eta,
                      base, budget, quiet, heartbeat_interval, grace_period)  # fmt: skip
        storage_, shared = _start_study(spec, key, overwrite)
        rundir.start(out, resume, overwrite, resume_file="search.json")
        write_json(out / "search.json", key)
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # Trials print their own lines.
        made = optuna.create_study(
            storage=storage_, study_name=spec.study, direction="maximize", load_if_exists=True
        )
        if "key" not in made.user_attrs:
            made.set_user_attr("key", shared)
        if workers == 1:
            work(spec, train, val)
        else:
            spec.threads = max(1, (os.cpu_count() or 1) // workers)  # No oversubscription.
            ctx = multiprocessing.get_context("spawn")  # Fork and torch's threads do not mix.
            procs = [
                ctx.Process(target=_spawned, args=(spec, train, val, i)) for i in range(workers)
            ]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
        trials = made.get_trials(deepcopy=False)
        rows = optuna_storage.write_results(out / "results.csv", trials)
        if not optuna_storage.finished(trials, n_trials, budget):
            raise PathMNISTError(
                f"the workers stopped before the study finished its {n_trials} trials; rerun "
                "the same command with --resume to continue it."
            )
        return rows, made
