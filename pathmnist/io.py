"""Atomic file writes: every file the package writes goes through here.

A crash, a full disk or a Ctrl-C while writing must never leave a half-written
checkpoint, npz, figure or report where a reader would trust it. The recipe is the
usual one: write a temporary file in the same directory (so the final rename stays on
one filesystem), flush it, then `os.replace` it over the target, which POSIX makes
atomic. On any failure the temporary file is removed.

Tested in tests/test_io.py (content, no leftovers on failure, no partial target).
"""

import contextlib
import json
import os
import tempfile
from pathlib import Path

# The process umask, read once (os.umask can only be read by setting it).
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to `path`; on success rename it over `path`.

    The caller writes the whole file to the yielded path (with any library: torch.save,
    np.savez, savefig). If the block raises, the temporary file is removed and `path`
    is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file owner-only (0600); give it the mode a plain open() would.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def write_text(path, text: str) -> Path:
    """Write `text` to `path` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(text.encode("utf-8"))
    return Path(path)


def write_json(path, obj) -> Path:
    """Write `obj` as indented JSON to `path` atomically and return the path."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
