"""training.inference: a run loaded for inference needs a whole checkpoint."""

import pytest
from test_checkpoints import one_message, splits  # noqa: F401 - fixtures

from pathmnist.errors import PathMNISTError
from pathmnist.training import checkpoints, inference


def test_load_checkpoint_needs_a_whole_checkpoint(tmp_path):
    """A valid checkpoint without the model, config or normalisation is named."""
    checkpoints.save({"config": {}}, tmp_path / "partial.pt")
    with pytest.raises(PathMNISTError, match="lacks what load_checkpoint needs") as info:
        inference.load_checkpoint(tmp_path / "partial.pt")
    one_message(info)


def test_check_trained_on_refuses_other_data(tmp_path, splits):  # noqa: F811
    """The data a checkpoint was trained on passes; another training or validation split,
    or another class count, is one sentence."""
    train, val = splits
    ident = {"train": checkpoints.data_identity(train), "val": checkpoints.data_identity(val)}
    checkpoints.save({"num_classes": train.num_classes, "data": ident}, tmp_path / "best.pt")
    inference.check_trained_on(tmp_path / "best.pt", {"train": train, "val": val})
    with pytest.raises(PathMNISTError, match="another val split") as info:
        inference.check_trained_on(tmp_path / "best.pt", {"val": train})
    one_message(info)
    checkpoints.save({"num_classes": 99, "data": ident}, tmp_path / "other.pt")
    with pytest.raises(PathMNISTError, match="trained on 99 classes"):
        inference.check_trained_on(tmp_path / "other.pt", {"train": train})


def test_analysed_checkpoint_follows_lesson3s_decision(tmp_path):
    """A folder whose metrics.json names a carried checkpoint stands for that model; one
    without stands for its own best.pt; a carried file that is gone is one sentence."""
    import json

    run, other = tmp_path / "run", tmp_path / "base.pt"
    run.mkdir()
    assert inference.analysed_checkpoint(run) == run / "best.pt"
    other.write_bytes(b"x")
    (run / "metrics.json").write_text(json.dumps({"carried_checkpoint": str(other)}))
    assert inference.analysed_checkpoint(run) == other
    other.unlink()
    with pytest.raises(PathMNISTError, match="no such file") as info:
        inference.analysed_checkpoint(run)
    one_message(info)
