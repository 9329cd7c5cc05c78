"""training.resume: a best.pt copied over last.pt, a best.pt of another epoch, other data of
the same sizes and fewer epochs than were done are each refused with one sentence; a
resume may change the precision, and history.csv records it per epoch."""

import math
import shutil
import warnings

import pytest

# Fixtures shared with test_checkpoints: pytest passes them by name (F811 is expected).
# ruff: noqa: F811
from test_checkpoints import one_message, splits, tiny  # noqa: F401 - fixtures
from test_fit import config, signal_set

from pathmnist.errors import PathMNISTError
from pathmnist.training import checkpoints
from pathmnist.training.fit import fit
from pathmnist.training.history import History


def test_best_pt_copied_over_last_pt_is_refused_on_resume(splits, tiny, tmp_path):
    """best.pt is a valid checkpoint but not a last.pt: resuming from it names the likely
    mistake in one sentence."""
    train, val = splits
    fit(config(epochs=1), train, val, tmp_path, quiet=True)
    shutil.copyfile(tmp_path / "best.pt", tmp_path / "last.pt")
    with pytest.raises(PathMNISTError) as info:
        fit(config(epochs=2), train, val, tmp_path, resume=True, quiet=True)
    message = one_message(info)
    assert "so it is not a last.pt (a best.pt copied over it?)" in message
    assert "lacks optimizer, scheduler, early_stopping, rng, rows" in message


def test_a_best_pt_of_another_epoch_is_refused_on_resume(splits, tiny, tmp_path):
    """last.pt records its best epoch; a best.pt from another epoch does not fit."""
    train, val = splits
    fit(config(epochs=2, patience=5), train, val, tmp_path / "a", quiet=True)
    fit(config(epochs=1), train, val, tmp_path / "b", quiet=True)
    saved = checkpoints.load(tmp_path / "a" / "last.pt")
    best_epoch = saved["early_stopping"]["best_epoch"]
    other = checkpoints.load(tmp_path / "b" / "best.pt")
    other["run"] = saved["run"]  # a's own run id: only its epoch differs.
    checkpoints.save({**other, "epoch": best_epoch + 1}, tmp_path / "a" / "best.pt")
    with pytest.raises(PathMNISTError, match=rf"is from epoch {best_epoch + 1}, not the best"):
        fit(config(epochs=3, patience=5), train, val, tmp_path / "a", resume=True)


def test_resume_onto_other_data_of_the_same_sizes_is_refused(splits, tiny, tmp_path):
    """Other images with the same split sizes and shapes (another seed of the synthetic
    set, say) are other data: the resume is refused and the run is left as it was."""
    train, val = splits
    fit(config(epochs=1), train, val, tmp_path, quiet=True)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    lookalike = signal_set(len(train), seed=5)
    assert lookalike.images.shape == train.images.shape
    for new_train, new_val in ((lookalike, val), (train, signal_set(len(val), seed=6))):
        with pytest.raises(PathMNISTError) as info:
            fit(config(epochs=2), new_train, new_val, tmp_path, resume=True)
        assert "it was trained on other data" in one_message(info)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_resume_with_fewer_epochs_than_done_is_refused(splits, tiny, tmp_path):
    """A run that trained 2 epochs cannot be resumed with --epochs 1."""
    train, val = splits
    fit(config(epochs=2, patience=5), train, val, tmp_path, quiet=True)
    with pytest.raises(PathMNISTError) as info:
        fit(config(epochs=1, patience=5), train, val, tmp_path, resume=True)
    message = one_message(info)
    assert "with epochs=1: it has already trained 2 epochs; pass --epochs 2 or more" in message


def test_a_precision_change_on_resume_is_recorded_per_epoch(splits, tiny, tmp_path):
    """Epoch 1 in fp32, resumed to 2 epochs in bf16: history.csv's precision column says
    fp32 then bf16, and last.pt keeps the settings the run resumed with."""
    train, val = splits
    fit(config(epochs=1), train, val, tmp_path, quiet=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Emulated bf16 on this CPU.
        history = fit(config(epochs=2, precision="bf16"), train, val, tmp_path,
                               resume=True, quiet=True)  # fmt: skip
    rows = History.from_csv(tmp_path / "history.csv").rows
    assert [(r["epoch"], r["device"], r["precision"]) for r in rows] == [
        (1, "cpu", "fp32"), (2, "cpu", "bf16"),
    ]  # fmt: skip
    assert [r["precision"] for r in history.rows] == ["fp32", "bf16"]
    assert all(math.isfinite(r["train_loss"]) for r in rows)
    assert checkpoints.load(tmp_path / "last.pt")["config"]["precision"] == "bf16"
