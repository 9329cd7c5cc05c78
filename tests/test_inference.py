"""training.inference: a run loaded for inference needs a whole checkpoint."""

import pytest
from test_checkpoints import one_message, splits, tiny  # noqa: F401 - fixtures

from pathmnist.errors import PathMNISTError
from pathmnist.training import checkpoints, inference


def test_load_checkpoint_needs_a_whole_checkpoint(tmp_path):
    """A valid checkpoint without the model, config or normalisation is named."""
    checkpoints.save({"config": {}}, tmp_path / "partial.pt")
    with pytest.raises(PathMNISTError, match="lacks what load_checkpoint needs") as info:
        inference.load_checkpoint(tmp_path / "partial.pt")
    one_message(info)
