"""grid() spells out the seed's search space in a fixed order (checked against
sklearn's ParameterGrid); grid_search() records, ranks and resumes trials."""

import pytest
from conftest import write_medmnist_npz
from hypothesis import given
from hypothesis import strategies as st
from sklearn.model_selection import ParameterGrid

from pathmnist import data, tuning
from pathmnist.errors import PathMNISTError
from pathmnist.training import TrainConfig


def test_seed_space_has_eight_trials_in_documented_order():
    """The seed's space gives Adam {1e-3, 3e-3} and SGD {1e-2, 3e-2} x batch {64, 128}."""
    trials = tuning.grid(tuning.DEFAULT_SPACE)
    assert [(t["optimizer"], t["lr"], t["batch_size"]) for t in trials] == [
        ("adam", 1e-3, 64),
        ("adam", 1e-3, 128),
        ("adam", 3e-3, 64),
        ("adam", 3e-3, 128),
        ("sgd", 1e-2, 64),
        ("sgd", 1e-2, 128),
        ("sgd", 3e-2, 64),
        ("sgd", 3e-2, 128),
    ]


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
    """For any list of sub-grids, grid() yields the same trials as sklearn's ParameterGrid."""
    ours = tuning.grid(space)
    oracle = list(ParameterGrid(space))
    assert sorted(map(tuning.trial_key, ours)) == sorted(map(tuning.trial_key, oracle))
    assert len(ours) == sum(len(s["lr"]) * len(s["batch_size"]) * len(s["epochs"]) for s in space)


@pytest.mark.parametrize(
    "space, word",
    [
        ({"learning_rate": [1e-3]}, "learning_rate"),
        ({"lr": []}, "non-empty"),
        ({"lr": 1e-3}, "list"),
        ([{}], "dict of lists"),
    ],
)
def test_bad_spaces_are_named(space, word):
    """A misspelt field, an empty or scalar value list, or an empty sub-grid is an error."""
    with pytest.raises(PathMNISTError, match=word):
        tuning.grid(space)


def test_rank_breaks_accuracy_ties_by_val_loss():
    """Equal best val accuracy: the lower val loss ranks first."""
    rows = [
        {
            "trial": i,
            "params": {},
            "best_val_acc": a,
            "best_val_loss": loss,
            "best_epoch": 1,
            "seconds": 0.0,
        }
        for i, (a, loss) in enumerate([(0.5, 0.3), (0.9, 0.4), (0.9, 0.2)])
    ]
    assert [r["trial"] for r in tuning.rank(rows)] == [2, 1, 0]


@pytest.fixture(scope="module")
def tiny_splits(tmp_path_factory):
    """A 36/18-image, 32x32, 9-class npz: enough to run the whole grid in seconds."""
    path = write_medmnist_npz(tmp_path_factory.mktemp("d") / "t.npz", sizes=(36, 18, 18), size=32)
    return data.load_split("train", data_file=path), data.load_split("val", data_file=path)


BASE = TrainConfig(device="cpu", precision="fp32")


def comparable(results):
    """Everything in a result row but its wall-clock seconds."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in results]


@pytest.mark.slow
def test_grid_search_resumes_after_interruption(tiny_splits, tmp_path, monkeypatch):
    """Stopped after 3 of 8 trials and run again, only the 5 missing trials run, and the
    final table equals an uninterrupted search's."""
    train, val = tiny_splits
    full = tuning.grid_search(
        tuning.DEFAULT_SPACE, train, val, tmp_path / "full", epochs=1, base=BASE, quiet=True
    )
    assert len(full) == 8

    class Interrupted(Exception):
        """Stands for the user's Ctrl-C: the run ends in the middle of the search."""

    calls = []
    real_fit = tuning.fit

    def fit_that_stops(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 4:
            raise Interrupted
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(tuning, "fit", fit_that_stops)
    with pytest.raises(Interrupted):
        tuning.grid_search(
            tuning.DEFAULT_SPACE, train, val, tmp_path / "cut", epochs=1, base=BASE, quiet=True
        )
    assert len(tuning.read_results(tmp_path / "cut" / "results.csv")) == 3
    calls.clear()
    monkeypatch.setattr(tuning, "fit", lambda *a, **k: calls.append(a[0]) or real_fit(*a, **k))
    resumed = tuning.grid_search(
        tuning.DEFAULT_SPACE, train, val, tmp_path / "cut", epochs=1, base=BASE, quiet=True
    )
    assert len(calls) == 5
    assert comparable(resumed) == comparable(full)
    assert not list((tmp_path / "cut").glob("trial_*/*.pt")), "checkpoints are cleaned up"


def test_existing_results_need_resume(tiny_splits, tmp_path):
    """resume=False refuses to mix a new search into an existing results.csv."""
    (tmp_path / "results.csv").write_text(",".join(tuning.RESULT_COLUMNS) + "\n")
    with pytest.raises(PathMNISTError, match="resume"):
        tuning.grid_search({"lr": [1e-3]}, *tiny_splits, tmp_path, resume=False)


def test_foreign_results_file_is_named(tmp_path):
    """A results.csv with other columns is reported, not misread."""
    (tmp_path / "results.csv").write_text("a,b\n1,2\n")
    with pytest.raises(PathMNISTError, match=r"results\.csv"):
        tuning.read_results(tmp_path / "results.csv")


def test_format_results_lists_every_trial():
    """The Markdown table has a header, a rule and one line per trial."""
    rows = [
        {
            "trial": 0,
            "params": {"lr": 0.001},
            "best_val_acc": 0.9,
            "best_val_loss": 0.3,
            "best_epoch": 2,
            "seconds": 1.0,
        }
    ]
    table = tuning.format_results(rows)
    assert table.splitlines()[0].startswith("| rank | lr |")
    assert "0.9000" in table and len(table.splitlines()) == 3
