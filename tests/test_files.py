"""Atomic writes: the target holds either the old or the whole new content, and no
temporary file is left behind, whatever happens in between."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pathmnist.files import atomic_path, write_json, write_text


def test_write_text_and_json_roundtrip(tmp_path):
    """Written files read back equal, parent folders are created, nothing else remains."""
    p = write_text(tmp_path / "a" / "b.txt", "hello\n")
    assert p.read_text() == "hello\n"
    q = write_json(tmp_path / "m.json", {"val": {"accuracy": 0.5}})
    assert json.loads(q.read_text()) == {"val": {"accuracy": 0.5}}
    assert sorted(x.name for x in tmp_path.rglob("*")) == ["a", "b.txt", "m.json"]


def test_failure_keeps_old_content_and_leaves_no_temp(tmp_path):
    """An exception inside the block leaves the previous file untouched and no temp file."""
    target = write_text(tmp_path / "t.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["t.txt"]


def test_interrupt_before_first_write_leaves_nothing(tmp_path):
    """A KeyboardInterrupt before the target ever existed leaves the folder empty."""
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "x.bin"):
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


@given(st.text(max_size=200))
def test_any_text_roundtrips(tmp_path_factory, text):
    """Any unicode text is written and read back unchanged."""
    p = tmp_path_factory.mktemp("w") / "f.txt"
    assert write_text(p, text).read_bytes().decode("utf-8") == text


def test_written_files_get_the_usual_mode(tmp_path):
    """Files are readable by others as with open() (mkstemp alone would make them 0600)."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    assert (write_text(tmp_path / "f", "x").stat().st_mode & 0o777) == 0o666 & ~umask
