"""Run directories that never mix two runs: refuse, resume or overwrite; one live run each.

An `--out` folder holds one run. Starting a run there:

- an empty or absent folder is simply used;
- a folder that holds files this package writes is refused, before anything in it is
  touched, unless the run resumes it (`resume=True`) or replaces it (`overwrite=True`:
  every file this package wrote there is removed, and nothing else);
- a folder that a live run holds is refused: `lock` takes an exclusive `fcntl.flock` on
  `.pathmnist.lock`, which the kernel releases when the process ends, however it ends
  (kill -9 included), so a crashed run never leaves a stale lock;
- temporary files that a killed write left behind (`.NAME.*.tmp`) are removed on start.

What this package writes in a run folder is a fixed set of names (OWNED) plus the figures
folder and the trial folders of a search (each a run folder itself, marked by its own
files); `owned_paths` lists exactly those, so `overwrite` cannot delete a user's file.

Tested in tests/test_rundir.py.
"""

import contextlib
import errno
import fcntl
import os
import shutil
from pathlib import Path

from pathmnist.errors import PathMNISTError

LOCK = ".pathmnist.lock"
# Every file name the examples and training write at the top of a run folder.
OWNED = (
    "config.json",
    "history.csv",
    "metrics.json",
    "report.md",
    "best.pt",
    "last.pt",
    "results.csv",
    "search.json",
    "best_config.json",
)
FIGURES = "figures"  # Every *.png in it is a figure the package drew.


def check_out(out) -> Path:
    """`out` as a Path if it can be a run folder: not "", not a file, not under a file."""
    if out is None or str(out).strip() == "":
        raise PathMNISTError("--out is empty; give a folder name, e.g. --out runs/my_run.")
    out = Path(out)
    for parent in (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            raise PathMNISTError(
                f"--out {out} cannot be a folder: {parent} is a file; choose another --out."
            )
    return out


def _is_run(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in OWNED)


def owned_paths(out) -> list[Path]:
    """The files and folders in `out` that this package wrote (temporary files included)."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = [out / name for name in OWNED if (out / name).is_file()]
    found += sorted((out / FIGURES).glob("*.png"))
    found += sorted(out.glob(".*.tmp"))
    found += sorted(p for p in out.iterdir() if p.is_dir() and p.name != FIGURES and _is_run(p))
    return found


def holds_run(out) -> bool:
    """True when `out` holds the files of an earlier run (or of a search's trials); the
    temporary files of a killed write alone are not a run (`start` removes them)."""
    temporaries = set(Path(out).glob(".*.tmp"))
    return any(p not in temporaries for p in owned_paths(out))


def check_start(out, resume: bool, overwrite: bool, resume_file: str = "last.pt") -> Path:
    """Refuse a start that would mix two runs, touching nothing: with neither flag, `out`
    must hold no earlier run; with `resume`, it must hold `resume_file`."""
    out = check_out(out)
    if resume and overwrite:
        raise PathMNISTError("--resume and --overwrite contradict each other; pass one of them.")
    if resume:
        if not (out / resume_file).exists() and not unstarted(out):
            raise PathMNISTError(
                f"there is nothing to resume in {out} (no {resume_file}); drop --resume to "
                "start a new run."
            )
    elif holds_run(out) and not overwrite:
        raise PathMNISTError(
            f"{out} already holds a run; pass --resume to continue it, --overwrite to replace "
            "it, or choose another --out."
        )
    return out


def unstarted(out) -> bool:
    """True for a run folder whose run was stopped before its first epoch ended: it holds
    config.json and an empty history.csv at most, no checkpoint. `--resume` then starts
    that run from the beginning, as Ctrl-C's message promises."""
    out = Path(out)
    if (out / "last.pt").exists() or (out / "best.pt").exists() or not out.is_dir():
        return False
    history = out / "history.csv"
    if history.exists() and len(history.read_text(errors="replace").splitlines()) > 1:
        return False
    names = {p.name for p in owned_paths(out) if not p.name.endswith(".tmp")}
    return bool(names) and names <= {"config.json", "history.csv"}


def clear(out) -> None:
    """Remove every file and folder this package wrote in `out`, and nothing else."""
    for path in owned_paths(out):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        (Path(out) / FIGURES).rmdir()  # Only if now empty: a user's own file stays.


def remove_temporaries(out) -> None:
    """Delete the `.NAME.*.tmp` files that a killed atomic write left in `out`."""
    for tmp in Path(out).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def lock(out):
    """Hold `out` for this process: a second run into it is refused with one sentence."""
    out = check_out(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise PathMNISTError(
            f"cannot write into {out} ({e.strerror}); choose a folder you can write to."
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise PathMNISTError(
                    f"another run is writing into {out} right now; wait for it to finish or "
                    "choose another --out."
                ) from None
            raise
        if not os.access(out, os.W_OK):
            raise PathMNISTError(f"{out} is not writable; choose a folder you can write to.")
        yield out
    finally:
        os.close(fd)  # Closing releases the flock; the empty lock file may stay.


def start(out, resume: bool, overwrite: bool, resume_file: str = "last.pt") -> Path:
    """After the settings and data are checked: refuse or clear as `check_start` says,
    and remove temporary files. Call inside `lock(out)`."""
    out = check_start(out, resume, overwrite, resume_file)
    if overwrite or (resume and not (out / resume_file).exists()):  # Overwrite, or unstarted.
        clear(out)
    remove_temporaries(out)
    return out
