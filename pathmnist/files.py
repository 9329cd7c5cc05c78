"""Atomic file writes: every file the package writes goes through here.

A crash, a full disk or a Ctrl-C while writing must never leave a half-written
checkpoint, npz, figure or report where a reader would trust it. The recipe is the
usual one: write a temporary file in the same directory (so the final rename stays on
one filesystem), flush it, then `os.replace` it over the target, which POSIX makes
atomic. On any failure the temporary file is removed.

Tested in tests/test_files.py (content, no leftovers on failure, no partial target).
"""

import contextlib
import errno
import json
import os
import tempfile
import time
from pathlib import Path

from pathmnist.errors import PathMNISTError

# The process umask, read once (os.umask can only be read by setting it).
_UMASK = os.umask(0)
os.umask(_UMASK)
# Test hook for the fault-injection tests: seconds to sleep after the temporary file is
# written and before the rename, so a kill can land inside a checkpoint write.
SLOW_WRITE_ENV = "PATHMNIST_TEST_SLOW_WRITE"
_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def _disk_full(e: BaseException) -> bool:
    """A write that failed for lack of space: OSError ENOSPC/EFBIG, or torch.save's
    RuntimeError from its zip writer ("unexpected pos", "file write failed", or, when the
    failed writes surface only as it closes the file, "basic_ios::clear: iostream error")."""
    if isinstance(e, OSError):
        return e.errno in _FULL
    text = str(e)
    signs = ("unexpected pos", "write failed", "iostream error")
    return isinstance(e, RuntimeError) and any(s in text for s in signs)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to `path`; on success rename it over `path`.

    The caller writes the whole file to the yielded path (with any library: torch.save,
    np.savez, savefig). If the block raises, the temporary file is removed and `path`
    is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        what = "the disk is full" if e.errno in _FULL else e.strerror
        raise PathMNISTError(
            f"cannot write {path} ({what}); choose a folder you can write to."
        ) from None
    os.close(fd)
    try:
        try:
            yield Path(tmp)
        except (OSError, RuntimeError) as e:
            if _disk_full(e):
                raise PathMNISTError(
                    f"writing {path} failed: the disk is full (or a file size limit was "
                    "reached); the previous file is intact: free some space and rerun "
                    "(with --resume for a training run)."
                ) from None
            raise
        if os.environ.get(SLOW_WRITE_ENV):
            time.sleep(float(os.environ[SLOW_WRITE_ENV]))
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
