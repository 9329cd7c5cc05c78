"""training.checkpoints: a checkpoint round-trips through torch.load(weights_only=True)
with its SHA-256; one flipped byte in a saved tensor, a truncated or foreign file, a pickle
whose __reduce__ would run code, and a best.pt copied over last.pt are each refused with
one sentence (and the malicious pickle runs nothing); a resume onto other data of the same
sizes, or with fewer epochs than were done, is refused; a resume may change the precision,
and history.csv records it per epoch; the RNG states replay every generator."""

import random

import numpy as np
import pytest
import torch
from test_fit import signal_set

from pathmnist.config import seed_everything
from pathmnist.data.dataset import ImageSet
from pathmnist.errors import PathMNISTError
from pathmnist.training import checkpoints, inference

MARKER = "ran.txt"


class RunsCode:
    """Pickles as a call to Path.write_text: loading it with plain pickle writes a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (type(self.path).write_text, (self.path, "code ran"))


@pytest.fixture(scope="module")
def splits():
    """40 training and 24 validation images, 16x16, 3 classes."""
    return signal_set(40, seed=0), signal_set(24, seed=1)


def one_message(info):
    """The error's text, checked to be one line ending in a full stop."""
    message = str(info.value)
    assert "\n" not in message and message.endswith("."), message
    return message


# save / load


def test_round_trip_through_weights_only(tmp_path):
    """A payload of tensors, numbers, strings, lists, tuples, dicts and None comes back
    equal, tagged with the format and its checksum; no temporary file is left."""
    payload = {
        "model": {"w": torch.randn(3, 4), "b": torch.zeros(0), "n": torch.tensor(7)},
        "rows": [{"epoch": 1, "val_loss": 0.5, "device": "cpu"}],
        "pair": (1, 2.5),
        "nothing": None,
        "half": torch.ones(2, dtype=torch.bfloat16),
    }
    checkpoints.save(payload, tmp_path / "c.pt")
    back = checkpoints.load(tmp_path / "c.pt")
    assert back["format"] == checkpoints.FORMAT and back["sha256"] == checkpoints.checksum(back)
    assert all(torch.equal(back["model"][k], payload["model"][k]) for k in payload["model"])
    assert back["rows"] == payload["rows"] and back["pair"] == (1, 2.5) and back["nothing"] is None
    assert torch.equal(back["half"], payload["half"]) and back["half"].dtype == torch.bfloat16
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_checksum_depends_on_every_value():
    """Changing one tensor element, a dtype, a shape, a number or a key changes the hash;
    the same contents (a copy) hash the same."""
    base = {"w": torch.arange(6.0).view(2, 3), "lr": 0.1, "rows": [1, 2]}
    h = checkpoints.checksum(base)
    assert checkpoints.checksum({k: v for k, v in reversed(base.items())}) == h
    assert checkpoints.checksum({**base, "w": base["w"].clone()}) == h
    changed = [
        {**base, "w": base["w"].clone().index_put_((torch.tensor([0]), torch.tensor([0])),
                                                   torch.tensor(0.5))},
        {**base, "w": base["w"].double()},
        {**base, "w": base["w"].view(3, 2)},
        {**base, "lr": 0.1000001},
        {**base, "rows": [1, 2, 3]},
        {**base, "extra": None},
    ]  # fmt: skip
    assert len({h, *map(checkpoints.checksum, changed)}) == 1 + len(changed)


def test_a_flipped_byte_in_a_saved_tensor_fails_the_checksum(tmp_path):
    """One byte of a weight flipped on disk (torch's zip reader does not check its CRCs)
    is refused with one sentence that says the file changed and what to do."""
    weights = torch.arange(64, dtype=torch.float32) + 0.5  # A byte pattern found once.
    path = checkpoints.save({"model": {"w": weights}}, tmp_path / "last.pt")
    raw = bytearray(path.read_bytes())
    at = bytes(raw).find(weights.numpy().tobytes())
    assert at > 0
    raw[at + 101] ^= 0x01
    path.write_bytes(bytes(raw))
    assert not torch.equal(torch.load(path, weights_only=True)["model"]["w"], weights)
    with pytest.raises(PathMNISTError) as info:
        checkpoints.load(path)
    message = one_message(info)
    assert "fails its checksum: the file changed after it was written" in message
    assert message.endswith("train again without --resume.")


def test_an_edited_value_with_the_old_checksum_is_refused(tmp_path):
    """A payload changed and re-saved by hand keeps a checksum that no longer fits."""
    path = checkpoints.save({"epoch": 3, "lr": 0.1}, tmp_path / "c.pt")
    payload = torch.load(path, weights_only=True)
    payload["lr"] = 1.0
    torch.save(payload, path)
    with pytest.raises(PathMNISTError, match="fails its checksum"):
        checkpoints.load(path)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "there is no checkpoint at"),
        (b"", "not a readable checkpoint"),
        (b"\x00" * 100, "not a readable checkpoint"),
        ("truncated", "not a readable checkpoint"),
        ("foreign", "not a pathmnist checkpoint (format None"),
        ("tensor", "not a pathmnist checkpoint (format 'Tensor'"),
    ],
)
def test_unreadable_files_are_one_sentence(tmp_path, content, words):
    """A missing, empty, zeroed, truncated or foreign file is one PathMNISTError sentence
    ending with the fix, never a pickle or zip traceback."""
    path = tmp_path / "last.pt"
    if content == "truncated":
        checkpoints.save({"w": torch.randn(100)}, path)
        path.write_bytes(path.read_bytes()[:-200])
    elif content == "foreign":
        torch.save({"state_dict": {"w": torch.ones(2)}}, path)
    elif content == "tensor":
        torch.save(torch.ones(2), path)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(PathMNISTError) as info:
        checkpoints.load(path, "do the fix")
    message = one_message(info)
    assert words in message and str(path) in message and message.endswith("do the fix.")


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    """A file whose unpickling calls a function (here Path.write_text via __reduce__) is
    refused by weights_only loading before anything runs; the same file loaded without
    weights_only does run it, so the refusal is what protects."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / MARKER
    torch.save({"format": checkpoints.FORMAT, "model": RunsCode(marker)}, tmp_path / "evil.pt")
    with pytest.raises(PathMNISTError) as info:
        checkpoints.load(tmp_path / "evil.pt")
    assert "not a readable checkpoint" in one_message(info)
    with pytest.raises(PathMNISTError):
        inference.load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
    torch.load(tmp_path / "evil.pt", weights_only=False)  # The danger being guarded against.
    assert marker.read_text() == "code ran"


# RNG states and data identity


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    """After save and load (weights_only), set_rng_state replays torch's, numpy's and
    Python's next random numbers."""
    seed_everything(7)
    np.random.standard_normal()  # noqa: NPY002 - leave a cached Gaussian in numpy's state.
    checkpoints.save({"rng": checkpoints.rng_state()}, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.standard_normal(3), random.random())  # noqa: NPY002
    seed_everything(99)
    checkpoints.set_rng_state(checkpoints.load(tmp_path / "rng.pt")["rng"])
    got = (torch.rand(3), np.random.standard_normal(3), random.random())  # noqa: NPY002
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert got[2] == expected[2]


def test_data_identity_tells_same_sized_data_apart():
    """Equal arrays give equal identities; other pixels in a sampled image or other
    labels with the same sizes and shapes give another."""
    a = signal_set(200, seed=0)
    same = ImageSet(a.images.copy(), a.labels.copy(), a.class_names)
    other_pixels = ImageSet(a.images.copy(), a.labels, a.class_names)
    other_pixels.images[97, 0, 0, 0] ^= 1
    other_labels = ImageSet(a.images, np.roll(a.labels, 1), a.class_names)
    ids = [checkpoints.data_identity(s) for s in (a, same, other_pixels, other_labels)]
    assert ids[0] == ids[1] and ids[0] != ids[2] and ids[0] != ids[3]
    assert ids[0]["n"] == 200 and ids[0]["shape"] == [16, 16, 3]


# Resume refusals and what a resume may change (through fit, on a tiny net).
