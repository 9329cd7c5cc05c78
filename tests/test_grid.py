"""pathmnist.tuning: grid.expand() spells out the seed's search space in a fixed order (checked
against sklearn's ParameterGrid); summarize() ranks trials by their mean over seeds with a
Student-t interval (checked against scipy.stats); grid_search() and halving_search()
record one results.csv row per (trial, epochs, seed), skip finished runs on resume,
continue a trial killed mid-way, and refuse a resume whose search differs."""

import json
import math

import numpy as np
import pytest
import scipy.stats
from conftest import write_medmnist_npz
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sklearn.model_selection import ParameterGrid
from test_fit import signal_set

from pathmnist.config import TrainConfig
from pathmnist.data import dataset as data
from pathmnist.errors import PathMNISTError
from pathmnist.studies import folder, grid, halving
from pathmnist.training import resume

BASE = TrainConfig(device="cpu", precision="fp32", batch_size=8)


@pytest.fixture(scope="module")
def splits():
    """24 training and 12 validation images, 16x16, 3 classes."""
    return signal_set(24, seed=0), signal_set(12, seed=1)


def comparable(results):
    """Everything in a result or summary row but its wall-clock seconds (NaN as None, so
    that equal rows compare equal)."""
    nan_free = lambda v: None if isinstance(v, float) and math.isnan(v) else v
    return [{k: nan_free(v) for k, v in r.items() if k != "seconds"} for r in results]


# The grid.


def test_seed_space_has_eight_trials_in_documented_order():
    """The seed's space gives Adam {1e-3, 3e-3} and SGD {1e-2, 3e-2} x batch {64, 128}."""
    trials = grid.expand(grid.DEFAULT_SPACE)
    assert [(t["optimizer"], t["lr"], t["batch_size"]) for t in trials] == [
        ("adam", 1e-3, 64), ("adam", 1e-3, 128), ("adam", 3e-3, 64), ("adam", 3e-3, 128),
        ("sgd", 1e-2, 64), ("sgd", 1e-2, 128), ("sgd", 3e-2, 64), ("sgd", 3e-2, 128),
    ]  # fmt: skip


space_values = st.lists(st.integers(0, 5), min_size=1, max_size=3, unique=True)


@given(
    st.lists(
        st.fixed_dictionaries(
            {"lr": space_values, "batch_size": space_values, "epochs": space_values}
        ),
        min_size=1,
        max_size=3,
    )
)
def test_grid_equals_sklearn_parameter_grid(space):
    """For any list of sub-grids, grid.expand() yields the trials of sklearn's ParameterGrid."""
    ours = grid.expand(space)
    oracle = list(ParameterGrid(space))
    assert sorted(map(folder.trial_key, ours)) == sorted(map(folder.trial_key, oracle))
    assert len(ours) == sum(len(s["lr"]) * len(s["batch_size"]) * len(s["epochs"]) for s in space)


@pytest.mark.parametrize(
    ("space", "word"),
    [
        ({"learning_rate": [1e-3]}, "learning_rate"),
        ({"lr": []}, "non-empty"),
        ({"lr": 1e-3}, "list"),
        ({"optimizer": "adam"}, "list"),
        ([{}], "dict of lists"),
        ([[1]], "dict of lists"),
    ],
)
def test_bad_spaces_are_named(space, word):
    """A misspelt field, an empty or scalar value list, or an empty sub-grid is an error."""
    with pytest.raises(PathMNISTError, match=word):
        grid.expand(space)


def test_trial_key_and_name():
    """The key ignores the order of the parameters; the folder name keeps it, leads with
    the optimizer's bare name and has no slash or space."""
    a = {"optimizer": "adam", "lr": 0.001, "batch_size": 64}
    b = {"batch_size": 64, "lr": 0.001, "optimizer": "adam"}
    assert folder.trial_key(a) == folder.trial_key(b) != folder.trial_key({**a, "lr": 0.003})
    assert folder.trial_name(a) == "adam_lr=0.001_batch_size=64"
    assert folder.trial_name({"augment": "a/b c"}) == "augment=a-bc"


# summarize and compute.


def row(params, seed, acc, loss=0.5, epochs=3):
    return {"params": params, "epochs": epochs, "seed": seed, "val_acc": acc,
            "val_loss": loss, "best_epoch": 1, "seconds": 1.0}  # fmt: skip


@settings(max_examples=25)
@given(accs=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=6))
@example(accs=[0.5, 0.5])  # No spread: a zero-width interval.
@example(accs=[0.0, 1.0])  # Two seeds far apart: the t interval leaves [0, 1].
def test_summary_mean_and_interval_equal_scipy(accs):
    """A trial's val_acc is the mean over its seeds and its 95% interval is scipy's
    Student-t interval (rel. 1e-9) clipped to [0, 1], where an accuracy lives; val_loss
    is the mean too."""
    rows = [row({"lr": 0.1}, s, a, loss=s) for s, a in enumerate(accs)]
    (s,) = grid.summarize(rows)
    mean = np.mean(accs)
    sem = np.std(accs, ddof=1) / math.sqrt(len(accs))
    low, high = (mean, mean) if sem == 0 else scipy.stats.t.interval(0.95, len(accs) - 1, mean, sem)
    low, high = max(low, 0.0), min(high, 1.0)
    assert (s["n"], s["seeds"], s["epochs"]) == (len(accs), list(range(len(accs))), 3)
    assert s["val_acc"] == pytest.approx(mean, rel=1e-9, abs=1e-12)
    assert (s["val_acc_low"], s["val_acc_high"]) == pytest.approx((low, high), rel=1e-9, abs=1e-12)
    assert s["val_loss"] == pytest.approx(np.mean(range(len(accs))))


def test_summary_ranking():
    """Longer budgets first (halving's last round), then higher mean accuracy, ties by
    lower mean val loss; one seed has no interval (NaN)."""
    rows = [
        row({"t": 0}, 0, 0.5, 0.3), row({"t": 1}, 0, 0.9, 0.4), row({"t": 2}, 0, 0.9, 0.2),
        row({"t": 3}, 0, 0.1, 0.9, epochs=9),
    ]  # fmt: skip
    ranked = grid.summarize(rows)
    assert [s["params"]["t"] for s in ranked] == [3, 2, 1, 0]
    assert math.isnan(ranked[0]["val_acc_low"]) and math.isnan(ranked[0]["val_acc_high"])


def test_compute_counts_image_epochs():
    """Compute is the epochs of every finished run times the training images."""
    rows = [row({}, 0, 0.5, epochs=3), row({}, 1, 0.5, epochs=9)]
    assert grid.compute(rows, 1000) == 12_000 and grid.compute([], 10) == 0


# results.csv


def test_results_file_round_trip_and_refusals(tmp_path):
    """An absent results.csv reads as no rows; foreign columns or a non-number are named."""
    assert folder.read_results(tmp_path / "results.csv") == []
    (tmp_path / "results.csv").write_text("a,b\n1,2\n")
    with pytest.raises(PathMNISTError, match=r"results\.csv is not a results file"):
        folder.read_results(tmp_path / "results.csv")
    header = ",".join(folder.RESULT_COLUMNS)
    (tmp_path / "results.csv").write_text(header + '\n"{}",3,0,high,0.5,1,2.0\n')
    with pytest.raises(PathMNISTError, match="line 2 is damaged"):
        folder.read_results(tmp_path / "results.csv")


# Searches on the tiny net.


def test_grid_search_repeats_seeds_and_cleans_up(splits, tiny, tmp_path):
    """Two trials x two seeds give four results.csv rows and two ranked entries of n=2;
    each trial folder is named by its parameters, keeps config and history, and drops its
    checkpoints; search.json records the search."""
    train, val = splits
    space = {"lr": [1e-2, 1e-3]}
    ranked = grid.grid_search(space, train, val, tmp_path, epochs=1, base=BASE, repeats=2,
                                quiet=True)  # fmt: skip
    rows = folder.read_results(tmp_path / "results.csv")
    assert sorted((r["params"]["lr"], r["seed"]) for r in rows) == [
        (1e-3, 0), (1e-3, 1), (1e-2, 0), (1e-2, 1),
    ]  # fmt: skip
    assert [s["n"] for s in ranked] == [2, 2] and all(s["seeds"] == [0, 1] for s in ranked)
    assert comparable(ranked) == comparable(grid.summarize(rows))
    trial = tmp_path / "lr=0.01" / "epochs=1_seed=1"
    assert (trial / "history.csv").exists() and (trial / "config.json").exists()
    assert not list(tmp_path.rglob("*.pt"))
    key = json.loads((tmp_path / "search.json").read_text())
    assert (key["strategy"], key["repeats"], key["epochs"]) == ("grid", 2, 1)
    assert key["space"] == grid.expand(space) and key["base"] == BASE.to_dict()


def test_a_finished_search_resumed_trains_nothing(splits, tiny, tmp_path, monkeypatch):
    """Resuming a finished search reads every run from results.csv."""
    train, val = splits
    first = grid.grid_search({"lr": [1e-2]}, train, val, tmp_path, epochs=1, base=BASE,
                               quiet=True)  # fmt: skip
    monkeypatch.setattr(folder, "fit", lambda *a, **k: pytest.fail("trained again"))
    again = grid.grid_search({"lr": [1e-2]}, train, val, tmp_path, epochs=1, base=BASE,
                               resume=True, quiet=True)  # fmt: skip
    assert comparable(again) == comparable(first)


def test_a_trial_killed_mid_way_continues_from_its_last_pt(splits, tiny, tmp_path, monkeypatch):
    """Killed after epoch 1 of a 2-epoch trial, a resumed search continues that trial from
    its last.pt and ends with the rows of an uninterrupted search."""
    train, val = splits
    space = {"lr": [1e-2, 1e-3]}
    full = grid.grid_search(space, train, val, tmp_path / "full", epochs=2, base=BASE,
                              quiet=True)  # fmt: skip
    real_save = resume.save_epoch

    def killed_after_epoch_1_of_trial_2(out_dir, *args):
        real_save(out_dir, *args)
        if "lr=0.001" in str(out_dir) and args[-2][-1]["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(resume, "save_epoch", killed_after_epoch_1_of_trial_2)
    with pytest.raises(KeyboardInterrupt):
        grid.grid_search(space, train, val, tmp_path / "cut", epochs=2, base=BASE, quiet=True)
    monkeypatch.setattr(resume, "save_epoch", real_save)
    assert (tmp_path / "cut" / "lr=0.001" / "epochs=2_seed=0" / "last.pt").exists()
    resumed = grid.grid_search(space, train, val, tmp_path / "cut", epochs=2, base=BASE,
                                 resume=True, quiet=True)  # fmt: skip
    assert comparable(resumed) == comparable(full)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"epochs": 2}, "epochs"),
        ({"repeats": 2}, "repeats"),
        ({"base": TrainConfig(device="cpu", precision="fp32", batch_size=4)}, "base"),
        ({"space": {"lr": [0.5]}}, "space"),
    ],
)
def test_a_resume_of_another_search_is_refused(splits, tiny, tmp_path, changes, words):
    """A resume whose epochs, repeats, base config or space differ from search.json's is
    one sentence naming what differs, and results.csv is left as it was."""
    train, val = splits
    args = {"space": {"lr": [1e-2]}, "epochs": 1, "base": BASE, "repeats": 1}
    grid.grid_search(args["space"], train, val, tmp_path, epochs=1, base=BASE, quiet=True)
    before = (tmp_path / "results.csv").read_text()
    args.update(changes)
    with pytest.raises(PathMNISTError, match=rf"cannot resume the search in .*: its {words}"):
        grid.grid_search(args.pop("space"), train, val, tmp_path, resume=True, quiet=True,
                           **args)  # fmt: skip
    assert (tmp_path / "results.csv").read_text() == before


def test_existing_results_need_resume(splits, tmp_path):
    """resume=False refuses to mix a new search into a folder holding one."""
    (tmp_path / "results.csv").write_text(",".join(folder.RESULT_COLUMNS) + "\n")
    with pytest.raises(PathMNISTError, match="already holds a run of search; pass --resume"):
        grid.grid_search({"lr": [1e-3]}, *splits, tmp_path, resume=False)
    with pytest.raises(PathMNISTError, match=r"nothing to resume .*\(no search\.json\)"):
        grid.grid_search({"lr": [1e-3]}, *splits, tmp_path / "new", resume=True)
    with pytest.raises(PathMNISTError, match="repeats=0"):
        grid.grid_search({"lr": [1e-3]}, *splits, tmp_path / "new", repeats=0)


def test_halving_search_follows_the_schedule(splits, tiny, tmp_path):
    """Three candidates with eta 3 and 1..3 epochs: all three train 1 epoch, the best
    one 3 epochs (HalvingGridSearchCV's schedule); the ranking leads with the 3-epoch run
    and the winner is that candidate."""
    train, val = splits
    space = {"lr": [1e-2, 3e-3, 1e-3]}
    ranked, result = halving.halving_search(space, train, val, tmp_path, eta=3, min_epochs=1,
                                           max_epochs=3, base=BASE, quiet=True)  # fmt: skip
    rows = folder.read_results(tmp_path / "results.csv")
    assert sorted(r["epochs"] for r in rows) == [1, 1, 1, 3]
    assert [(r.round, r.resource) for r in result.records] == [(0, 1)] * 3 + [(1, 3)]
    assert ranked[0]["epochs"] == 3
    assert ranked[0]["params"] == grid.expand(space)[result.winner]
    assert result.compute == grid.compute(rows, 1) == 6
    assert json.loads((tmp_path / "search.json").read_text())["strategy"] == "halving"


# The real ResNet-18 on the seed's whole grid.


@pytest.fixture(scope="module")
def npz_splits(tmp_path_factory):
    """A 36/18-image, 32x32, 9-class npz: enough to run the whole grid in seconds."""
    path = write_medmnist_npz(tmp_path_factory.mktemp("d") / "t.npz", sizes=(36, 18, 18), size=32)
    return data.load_split("train", data_file=path), data.load_split("val", data_file=path)


@pytest.mark.slow
def test_grid_search_resumes_after_interruption(npz_splits, tmp_path, monkeypatch):
    """Stopped after 3 of 8 trials and run again with resume, only the 5 missing trials
    run, and the final table equals an uninterrupted search's."""
    train, val = npz_splits
    base = TrainConfig(device="cpu", precision="fp32")
    full = grid.grid_search(
        grid.DEFAULT_SPACE, train, val, tmp_path / "full", epochs=1, base=base, quiet=True
    )
    assert len(full) == 8

    class Interrupted(Exception):
        """Stands for the user's Ctrl-C: the run ends in the middle of the search."""

    calls = []
    real_fit = folder.fit

    def fit_that_stops(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 4:
            raise Interrupted
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(folder, "fit", fit_that_stops)
    with pytest.raises(Interrupted):
        grid.grid_search(
            grid.DEFAULT_SPACE, train, val, tmp_path / "cut", epochs=1, base=base, quiet=True
        )
    assert len(folder.read_results(tmp_path / "cut" / "results.csv")) == 3
    calls.clear()
    monkeypatch.setattr(folder, "fit", lambda *a, **k: calls.append(a[0]) or real_fit(*a, **k))
    resumed = grid.grid_search(grid.DEFAULT_SPACE, train, val, tmp_path / "cut", epochs=1,
                                 base=base, resume=True, quiet=True)  # fmt: skip
    assert len(calls) == 5
    assert comparable(resumed) == comparable(full)
    assert not list((tmp_path / "cut").rglob("*.pt")), "checkpoints are cleaned up"
