"""Tuning with Optuna: the seed space is the grid (Optuna's BruteForceSampler visits exactly
`grid.expand`'s 8 points), wide samples are valid configs, a study finishes exactly N
trials with two worker processes on SQLite and on a real PostgreSQL server, a worker
killed with SIGKILL mid-trial leaves that trial failed and retried and the study still
finishes, a rerun trains nothing, a changed space (or base) is refused, the same seed
gives the same trials, and the outputs are those of the other strategies.

In-process studies swap ResNet-18 for test_fit's TinyNet; spawned workers cannot see that
swap, so they train the real ResNet-18 on a few 32x32 images for a few epochs."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from conftest import write_medmnist_npz
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fit import signal_set

from pathmnist.config import TrainConfig
from pathmnist.errors import PathMNISTError
from pathmnist.report import optuna_report
from pathmnist.studies import folder, grid, optuna_search, optuna_space, optuna_storage

ROOT = Path(__file__).resolve().parents[1]
BASE = TrainConfig(device="cpu", precision="fp32", batch_size=8, lr=1e-2)
# Heartbeats every second; a trial silent for 3 s is failed and retried.
FAST = {"heartbeat_interval": 1, "grace_period": 3}


@pytest.fixture(scope="module")
def splits():
    """24 training and 12 validation images, 16x16, 3 classes."""
    return signal_set(24, seed=0), signal_set(12, seed=1)


@pytest.fixture(scope="module")
def big_splits():
    """16 training and 8 validation images of 20x20: ResNet-18's ImageNet stem needs 17
    pixels at least (spawned workers train it), and its cost grows with the pixels."""
    return signal_set(16, seed=0, size=20), signal_set(8, seed=1, size=20)


def study_of(out, name=optuna_search.STUDY_NAME, url=None):
    url = url or f"sqlite:///{out / optuna_search.DB_NAME}"
    return optuna.load_study(study_name=name, storage=url)


def states(study):
    return [t.state.name for t in study.get_trials()]


def comparable(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


# The spaces.


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_seed_space_is_the_grid():
    """Optuna's exhaustive BruteForceSampler over `suggest_grid` visits exactly the 8
    points of `grid.expand(DEFAULT_SPACE)`, each once, with the lr named per optimizer."""
    study = optuna.create_study(sampler=optuna.samplers.BruteForceSampler(seed=0))
    seen = []
    study.optimize(lambda t: seen.append(optuna_space.suggest(t, "seed")) or 0.0, n_trials=20)
    assert len(seen) == 8
    assert sorted(map(folder.trial_key, seen)) == sorted(
        map(folder.trial_key, grid.expand(grid.DEFAULT_SPACE))
    )
    names = {name for t in study.trials for name in t.params}
    assert names == {"optimizer", "adam_lr", "sgd_lr", "batch_size"}


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_subgrids_without_a_telling_key_are_numbered():
    """Sub-grids that no single-valued key tells apart are picked by index."""
    space = [{"lr": [0.1, 0.2]}, {"lr": [0.3], "batch_size": [8, 16]}]
    study = optuna.create_study(sampler=optuna.samplers.BruteForceSampler(seed=0))
    seen = []
    study.optimize(lambda t: seen.append(optuna_space.suggest_grid(t, space)) or 0.0, n_trials=9)
    assert sorted(map(folder.trial_key, seen)) == sorted(map(folder.trial_key, grid.expand(space)))
    assert "subgrid" in study.trials[0].params


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_wide_samples_are_valid_configs(seed):
    """Every wide sample is a valid TrainConfig inside the documented ranges, its
    augmentations in the pipeline's order."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    trial = study.ask()
    params = optuna_space.suggest(trial, "wide")
    config = optuna_storage.config_of(BASE, params)
    assert optuna_space.WIDE["lr"][0] <= config.lr <= optuna_space.WIDE["lr"][1]
    assert config.batch_size in optuna_space.WIDE["batch_size"]
    assert list(config.augment) == params["augment"]


def test_storage_errors_are_one_sentence(tmp_path):
    """A URL no database understands, and a server that is not there, are refused with
    one sentence that hides the password."""
    with pytest.raises(PathMNISTError, match="check --storage"):
        optuna_storage.open_storage("nodb://x")
    with pytest.raises(PathMNISTError, match="cannot open") as e:
        optuna_search.optuna_search(
            None, None, tmp_path / "run", storage="postgresql+psycopg://me:secret@127.0.0.1:1/db"
        )
    assert "secret" not in str(e.value) and not (tmp_path / "run").exists()


def test_without_optuna_says_how_to_install(monkeypatch, splits, tmp_path):
    """Where Optuna is missing, one sentence names the pip command; nothing is written."""
    monkeypatch.setattr(optuna_storage, "optuna", None)
    with pytest.raises(PathMNISTError, match=re.escape("pip install optuna 'psycopg[binary]'")):
        optuna_search.optuna_search(*splits, tmp_path / "run", base=BASE)
    assert not (tmp_path / "run").exists()


# In-process studies (one worker, the tiny net).


def search(splits, out, **kw):
    kw = {"n_trials": 4, "base": BASE, "min_epochs": 1, "max_epochs": 3, "eta": 2, **kw}
    return optuna_search.optuna_search(*splits, out, quiet=True, **kw)


def test_study_finishes_and_writes_the_outputs(tiny, splits, tmp_path):
    """N trials finish (complete or pruned, a pruned one stopped at a rung); results.csv,
    best_config.json (a TrainConfig lesson 3 loads), report.md and the PNGs exist."""
    out = tmp_path / "run"
    rows, study = search(splits, out)
    assert len(rows) == 4 and all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    assert all(r["pruned_at"] in (1, 2) for r in rows if r["state"] == "PRUNED")
    assert optuna_storage.read_results(out / "results.csv") == rows
    best = optuna_report.write_outputs(out, study, rows, BASE, 3, len(splits[0]), "t")
    config = TrainConfig.from_json(out / "best_config.json")
    assert dataclasses.replace(config, **{k: BASE.__dict__[k] for k in best["params"]}) == BASE
    for name in ("optimization_history", "trials"):
        assert (out / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert "image-epochs" in (out / "report.md").read_text()
    assert not list(out.glob("trial_*/*.pt"))  # Checkpoints are removed after each trial.


def test_rerun_trains_nothing_and_changes_are_refused(tiny, splits, tmp_path, monkeypatch):
    """A resumed study that has its N trials trains nothing; a resume with another space
    or base is refused before any file changes; --overwrite starts the study anew."""
    out = tmp_path / "run"
    rows, _ = search(splits, out)
    calls = []
    monkeypatch.setattr(optuna_search, "fit", lambda *a, **k: calls.append(a))
    again, _ = search(splits, out, resume=True)
    assert calls == [] and comparable(again) == comparable(rows)
    key = (out / "search.json").read_text()
    with pytest.raises(PathMNISTError, match="space differ"):
        search(splits, out, resume=True, space="wide")
    with pytest.raises(PathMNISTError, match="base differ"):
        search(splits, out, resume=True, base=dataclasses.replace(BASE, lr=0.5))
    assert (out / "search.json").read_text() == key
    assert len(study_of(out).trials) == 4


def test_joining_with_another_base_is_refused(tiny, splits, tmp_path):
    """A second run folder on the same storage joins the study only with the same key."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    search(splits, tmp_path / "a", storage=url, n_trials=1)
    with pytest.raises(PathMNISTError, match="was started with another base"):
        search(splits, tmp_path / "b", storage=url, base=dataclasses.replace(BASE, lr=0.5))
    rows, _ = search(splits, tmp_path / "b", storage=url, n_trials=2)  # Joins: one more.
    assert len(rows) == 2 and not (tmp_path / "b" / "trial_0000").exists()


def test_same_seed_gives_the_same_trials(tiny, splits, tmp_path):
    """TPE seeded from the base seed, one worker: two studies sample the same points
    and measure the same accuracies (everything but wall time is equal)."""
    a, _ = search(splits, tmp_path / "a", n_trials=5)
    b, _ = search(splits, tmp_path / "b", n_trials=5)
    assert comparable(a) == comparable(b)


def test_wide_space_trains(tiny, splits, tmp_path):
    """The wide space runs end to end; its best configuration loads as a TrainConfig."""
    rows, study = search(splits, tmp_path / "run", space="wide", n_trials=3)
    optuna_report.write_outputs(tmp_path / "run", study, rows, BASE, 3, 24, "wide")
    config = TrainConfig.from_json(tmp_path / "run" / "best_config.json")
    assert config.lr in [r["params"]["lr"] for r in rows]


def test_budget_stops_new_trials(tiny, splits, tmp_path):
    """With a budget of 4 epochs, trials stop being started once 4 are spent."""
    rows, _ = search(splits, tmp_path / "run", n_trials=50, budget=4)
    spent = sum(r["epochs"] for r in rows)
    assert 4 <= spent < 4 + 3 and len(rows) < 50


def test_no_importances_for_one_trial(tiny, splits, tmp_path):
    """One complete trial: no importance figure, and one sentence saying why."""
    _, study = search(splits, tmp_path / "run", n_trials=1)
    figures, note = optuna_report.optuna_figures(study, tmp_path / "figs")
    assert "Parameter importances" not in figures and "at least two complete" in note


# Spawned workers on shared storage.


def finished_exactly(study, n):
    done = [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]
    return len(done) == n


def test_two_workers_on_sqlite_finish_exactly_n(big_splits, tmp_path):
    """Two worker processes on the run folder's SQLite file finish exactly 4 trials."""
    out = tmp_path / "run"
    rows, study = search(big_splits, out, n_trials=4, workers=2, max_epochs=2, **FAST)
    assert finished_exactly(study, 4) and len(rows) == 4


@pytest.mark.postgres
def test_two_workers_on_postgres_finish_exactly_n(big_splits, tmp_path, postgres_url):
    """The same on a real PostgreSQL server, as machines sharing one database would."""
    rows, _ = search(
        big_splits, tmp_path / "run", n_trials=4, workers=2, max_epochs=2, storage=postgres_url,
        study=tmp_path.name, **FAST,
    )  # fmt: skip
    assert finished_exactly(study_of(None, tmp_path.name, postgres_url), 4) and len(rows) == 4
    assert "postgresql" in json.loads((tmp_path / "run" / "search.json").read_text())["storage"]


def test_killed_worker_trial_is_failed_and_retried(big_splits, tmp_path):
    """SIGKILL one worker while its trial runs: the other worker fails that trial once
    its heartbeat stops, retries it with the same parameters, and the study finishes."""
    out, result = tmp_path / "run", {}

    def run():
        try:
            result["rows"] = search(
                big_splits, out, n_trials=2, workers=2, min_epochs=4, max_epochs=4, **FAST
            )[0]
        except Exception as e:  # Reported by the assertion below.
            result["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    victim = None
    while thread.is_alive() and victim is None:
        time.sleep(0.05)
        if not list(out.glob("trial_*")):
            continue  # No trial has started: the study may not exist yet.
        for t in study_of(out).get_trials():
            if t.state.name == "RUNNING" and 1 <= len(t.intermediate_values) <= 2:
                victim = t
                os.kill(int(t.user_attrs["worker"].split(":")[1]), signal.SIGKILL)
                break
    thread.join(timeout=240)
    assert victim is not None and "error" not in result, result
    trials = {t.number: t for t in study_of(out).get_trials()}
    assert trials[victim.number].state.name == "FAIL"
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
    assert retries[0].params == victim.params
    assert finished_exactly(study_of(out), 2)
    assert [r["retry_of"] for r in result["rows"]].count(victim.number) == 1


@pytest.mark.slow
def test_example_runs_two_workers_and_reruns_nothing(tmp_path):
    """examples/02_tuning.py --strategy optuna --workers 2 writes the outputs; the same
    command with --resume trains nothing; with another --space it exits 2 in one line."""
    npz = write_medmnist_npz(tmp_path / "t.npz", sizes=(18, 9, 9), size=20)
    cmd = [sys.executable, str(ROOT / "examples" / "02_tuning.py"), "--data-file", str(npz),
           "--subset", "1", "--strategy", "optuna", "--trials", "3", "--workers", "2",
           "--epochs", "1", "--max-epochs", "2", "--eta", "2", "--device", "cpu",
           "--precision", "fp32", "--quiet", "--out", str(tmp_path / "run")]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    names = ("results.csv", "best_config.json", "report.md", "search.json")
    assert all((tmp_path / "run" / n).exists() for n in names)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").glob("trial_*/history.csv")}
    again = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=env)
    assert again.returncode == 0 and "trial " not in again.stdout.replace("trials:", "")
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}
    wide = subprocess.run([*cmd, "--resume", "--space", "wide"], capture_output=True, text=True,
                          env=env)  # fmt: skip
    assert wide.returncode == 2 and wide.stderr.count("\n") == 1 and "space" in wide.stderr
