"""pathmnist.training.history: history.csv round-trips every float exactly (NaN and infinities
included), best_row picks the epoch EarlyStopping (Keras semantics) keeps on any finite
series, for every monitor and min_delta, and a hand-edited file is refused with one
sentence that says how to fix it."""

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pathmnist.config import MONITORS
from pathmnist.errors import PathMNISTError
from pathmnist.training.early_stopping import EarlyStopping
from pathmnist.training.history import HISTORY_COLUMNS, NUMBER_COLUMNS, History, best_row

any_float = st.floats(allow_nan=True, allow_infinity=True)  # Every double: repr round-trips.
finite = st.floats(-1e6, 1e6, allow_nan=False)
min_deltas = st.floats(0.0, 10.0)


def make_rows(values, devices=None):
    """History rows, one per tuple of NUMBER_COLUMNS values."""
    devices = devices or [("cpu", "fp32")] * len(values)
    return [
        {"epoch": e, **dict(zip(NUMBER_COLUMNS, v, strict=True)), "device": d, "precision": p}
        for e, (v, (d, p)) in enumerate(zip(values, devices, strict=True), start=1)
    ]


def same(a, b):
    """Equal floats, or both NaN."""
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


@st.composite
def histories(draw, max_epochs=6):
    n = draw(st.integers(0, max_epochs))
    values = draw(st.lists(st.tuples(*[any_float] * len(NUMBER_COLUMNS)), min_size=n, max_size=n))
    where = st.tuples(st.sampled_from(["cpu", "cuda"]), st.sampled_from(["fp32", "bf16"]))
    return make_rows(values, draw(st.lists(where, min_size=n, max_size=n)))


# The CSV file.


@given(histories())
@example(make_rows([(1 / 3, 0.1, float("nan"), 0.5, float("nan"), 1e-3, 5e-324)]))
@example(make_rows([(-0.0, float("inf"), -float("inf"), 1e308, 0.1 + 0.2, 1e-300, 0.0)]))
def test_csv_round_trip_is_exact(tmp_path_factory, rows):
    """to_csv then from_csv gives back the same rows: every float bit for bit (repr
    round-trips; NaN stays NaN, of either sign; -0.0 stays -0.0), epochs as ints, device
    and precision."""
    path = tmp_path_factory.mktemp("h") / "history.csv"
    History(rows).to_csv(path)
    back = History.from_csv(path).rows
    assert len(back) == len(rows)
    for a, b in zip(rows, back, strict=True):
        assert list(b) == list(HISTORY_COLUMNS) and type(b["epoch"]) is int
        assert all(same(a[k], b[k]) for k in HISTORY_COLUMNS), (a, b)
        signed = [k for k in NUMBER_COLUMNS if not math.isnan(a[k])]
        assert all(math.copysign(1, a[k]) == math.copysign(1, b[k]) for k in signed)
    assert not list(path.parent.glob("*.tmp"))


def test_csv_layout_golden(tmp_path):
    """The header is HISTORY_COLUMNS and a row is written as repr would print it."""
    rows = make_rows([(0.5, 0.25, 0.1, 0.75, 0.9, 0.001, 1.5)], [("cuda", "bf16")])
    text = History(rows).to_csv(tmp_path / "h.csv").read_text()
    assert text == (
        "epoch,train_loss,train_acc,val_loss,val_acc,val_auc,lr,seconds,device,precision\n"
        "1,0.5,0.25,0.1,0.75,0.9,0.001,1.5,cuda,bf16\n"
    )


def test_from_csv_sets_best_epoch_by_monitor_and_min_delta(tmp_path):
    """best_epoch follows the monitor and its mode (val_loss falls, val_acc rises) and
    min_delta; best() returns that row."""
    values = [
        (1, 0, loss, acc, 0.5, 1e-3, 1) for loss, acc in [(0.7, 0.5), (0.2, 0.6), (0.15, 0.9)]
    ]
    History(make_rows(values)).to_csv(tmp_path / "h.csv")
    assert History.from_csv(tmp_path / "h.csv").best_epoch == 3
    assert History.from_csv(tmp_path / "h.csv", min_delta=0.1).best_epoch == 2
    back = History.from_csv(tmp_path / "h.csv", "val_acc")
    assert back.best_epoch == 3 and back.best()["val_acc"] == 0.9
    assert History([]).best() is None


BAD_FILES = [
    ("", "header should be epoch,train_loss"),
    ("epoch,train_loss,train_acc,val_loss,val_acc,val_auc,lr,seconds\n1,1,1,1,1,1,1,1\n",
     "not a history.csv of this version"),  # The first version's header, without device.
    ("a,b\n1,2\n", "not a history.csv of this version"),
    (",".join(HISTORY_COLUMNS) + "\n1,0.5,0.5,0.5,0.5,0.5,1e-3,1.0,cpu,fp32\n"
     "2,0.5,abc,0.5,0.5,0.5,1e-3,1.0,cpu,fp32\n", "line 3 is not a history row"),
    (",".join(HISTORY_COLUMNS) + "\n1,0.5,0.5,0.5,0.5,0.5,1e-3,1.0,cpu\n",
     "line 2 is not a history row"),  # A column short.
    (",".join(HISTORY_COLUMNS) + "\n1,0.5,0.5,0.5,0.5,0.5,1e-3,1.0,cpu,fp32,x\n",
     "line 2 is not a history row"),  # A column too many.
    (",".join(HISTORY_COLUMNS) + "\n1.5,0.5,0.5,0.5,0.5,0.5,1e-3,1.0,cpu,fp32\n",
     "line 2 is not a history row"),
    (",".join(HISTORY_COLUMNS) + "\n2,0.5,0.5,0.5,0.5,0.5,1e-3,1.0,cpu,fp32\n",
     "line 2 has epoch 2"),  # An epoch deleted.
    (",".join(HISTORY_COLUMNS) + "\n1,0.5,0.5,0.5,0.5,0.5,1e-3,1.0,cpu,fp32\n"
     "1,0.5,0.5,0.5,0.5,0.5,1e-3,1.0,cpu,fp32\n", "line 3 has epoch 1"),  # Pasted twice.
]  # fmt: skip


@pytest.mark.parametrize(("text", "words"), BAD_FILES)
def test_hand_edited_files_are_refused_with_one_sentence(tmp_path, text, words):
    """Another header, a value that is not a number, a short or long row and epochs out
    of order each raise one PathMNISTError sentence naming the file and the fix."""
    path = tmp_path / "history.csv"
    path.write_text(text)
    with pytest.raises(PathMNISTError) as info:
        History.from_csv(path)
    message = str(info.value)
    assert str(path) in message and words in message, message
    assert message.endswith("delete it and rerun, or restore the file the run wrote.")
    assert "\n" not in message


@pytest.mark.parametrize("content", [None, b"\xff\xfe\x00garbage\x80"])
def test_missing_or_binary_files_are_refused(tmp_path, content):
    """A missing file or bytes that are not text are one sentence, not a traceback."""
    path = tmp_path / "history.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(PathMNISTError, match=r"cannot read .*history\.csv .*; delete it"):
        History.from_csv(path)


# The best epoch: the one EarlyStopping keeps.


def stopper_best_epoch(values, monitor, min_delta, patience):
    """Feed `values` to EarlyStopping until it stops; return (best_epoch, epochs seen)."""
    stopper = EarlyStopping(
        patience, min_delta, MONITORS[monitor], restore_best_weights=False, monitor=monitor
    )
    for seen, value in enumerate(values, start=1):
        if stopper.step(value):
            return stopper.best_epoch, seen
    return stopper.best_epoch, len(values)


@given(
    values=st.lists(finite | st.sampled_from([0.0, 0.1, 0.2, 0.3, 0.30000000000000004]),
                    min_size=1, max_size=12),
    monitor=st.sampled_from(tuple(MONITORS)),
    min_delta=min_deltas | st.sampled_from([0.0, 0.1, 0.2]),
    patience=st.integers(0, 13),
)  # fmt: skip
@example(values=[0.3, 0.2, 0.1], monitor="val_loss", min_delta=0.1, patience=13)
@example(values=[0.1, 0.2, 0.30000000000000004], monitor="val_acc", min_delta=0.1, patience=13)
@example(values=[0.5, 0.5, 0.5], monitor="val_auc", min_delta=0.0, patience=13)  # Ties.
def test_best_row_is_early_stoppings_best_epoch(values, monitor, min_delta, patience):
    """On any finite series, for every monitor and min_delta (ties and rounding edges
    included), best_row picks the epoch EarlyStopping keeps, over the epochs it ran."""
    best, seen = stopper_best_epoch(values, monitor, min_delta, patience)
    other = "val_acc" if monitor == "val_loss" else "val_loss"  # Must not matter.
    rows = [{"epoch": e, monitor: v, other: -v} for e, v in enumerate(values[:seen], start=1)]
    assert best_row(rows, monitor, min_delta)["epoch"] == best


def test_best_row_skips_non_finite_values():
    """NaN and infinite values never become the best; no finite value gives None."""
    nan, inf = float("nan"), float("inf")
    rows = [{"epoch": e, "val_loss": v} for e, v in enumerate([nan, 0.5, -inf, 0.4, nan], 1)]
    assert best_row(rows)["epoch"] == 4
    assert best_row([{"epoch": 1, "val_loss": nan}]) is None
    assert best_row([]) is None
    acc = [{"epoch": e, "val_acc": v} for e, v in enumerate([0.5, inf, 0.6], 1)]
    assert best_row(acc, "val_acc")["epoch"] == 3
