"""Atomic file writes (every file the package writes goes through here), and the folder
lock that keeps two processes from writing into one folder.

A crash, a full disk or a Ctrl-C while writing must never leave a half-written
checkpoint, npz, figure or report where a reader would trust it. The recipe is the
usual one: write a temporary file in the same directory (so the final rename stays on
one filesystem), flush it, then `os.replace` it over the target, which POSIX makes
atomic. On any failure the temporary file is removed.

`folder_lock` takes an exclusive `fcntl.flock` on a LOCK file in the folder: the kernel
drops it when the process ends, however it ends (kill -9 included), so no lock goes stale.
The file is removed on release; a process that opened it just before is not fooled, since
it checks after its flock that the file it holds is still the one at the path.

Tested in tests/test_files.py (content, no leftovers on failure, no partial target) and
tests/test_rundir.py (the lock).
"""

import contextlib
import errno
import fcntl
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
LOCK = ".pathmnist.lock"
_HELD: dict[str, list] = {}  # This process's folder locks: real path -> [fd, depth, tag].


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


def _real(folder) -> str:
    return str(Path(folder).absolute().resolve())


def held_tag(folder):
    """The tag this process holds `folder` with (None if it does not hold it)."""
    folder = Path(folder)
    held = _HELD.get(_real(folder)) if folder.exists() else None
    return held[2] if held else None


def _flock(path: Path) -> int | None:
    """An fd with an exclusive flock on `path` (created if absent); None while another
    process holds it. Retried when the file was replaced between open and flock, so two
    processes never both hold it."""
    for _ in range(10):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        os.close(fd)  # Its holder removed it as we opened it: open the new one.
    return None


@contextlib.contextmanager
def folder_lock(folder, tag=None):
    """Hold `folder` (made if absent) for this process; PathMNISTError if another process
    holds it. A nested hold of the same folder in the same process shares the outer one
    (and its `tag`). Folders this hold made are removed on release if still empty."""
    folder = Path(folder)
    key = _real(folder) if folder.exists() else None
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield folder
        finally:
            _HELD[key][1] -= 1
        return
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = _flock(folder / LOCK)
    except OSError as e:
        _remove_empty(made)
        raise PathMNISTError(
            f"cannot write into {folder} ({e.strerror}); choose a folder you can write to."
        ) from None
    if fd is None:
        _remove_empty(made)
        raise PathMNISTError(
            f"another run is writing into {folder} right now; wait for it to finish or "
            "choose another --out."
        )
    key = _real(folder)
    _HELD[key] = [fd, 1, tag]
    try:
        yield folder
    finally:
        del _HELD[key]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / LOCK)  # While still held: `_flock` retries on a new file.
        os.close(fd)  # Closing releases the flock.
        _remove_empty(made)


def _remove_empty(folders) -> None:
    """Remove `folders` (innermost first) where they are empty: what a refused run made."""
    for path in folders:
        with contextlib.suppress(OSError):
            path.rmdir()
