"""Run folders that never lose or mix a run: refuse, resume or overwrite; one live run each.

A run folder holds one run of one kind: the program that started it (an example such as
"01_baseline", or the library's "train", "search" or "study"), recorded with a random run
id in MARK when the run starts (the run's checkpoints and config.json carry the id).
Kinds fall into families by the files they write (FAMILIES): a training run, a search
(search.json, results.csv and its trial folders), a study (study.json, results.csv and its
seed folders). Starting a run of kind K in `out`:

- an absent folder, or one holding only the user's own files, is used;
- a folder holding another run is refused, with or without --overwrite: a run of another
  kind (01 asked to write over a 02 search or a 03 run), or a sub-folder that is a run of
  its own (`--out runs` over runs/01_baseline/) and not a member of this run (a search's
  trials `TRIAL/epochs=E_seed=S`, a study's `SHIFT/RECIPE/seed=S`: MEMBERS);
- a folder holding a run of kind K is refused unless the run resumes it (`resume`) or
  replaces it (`overwrite`: that run's files and member folders are removed, nothing else);
- a folder a live run holds is refused (`files.folder_lock`): an example keeps it with
  `hold` from its check of the folder to the last byte of its report; `fit` and the
  studies inside share that hold. A folder a refused run created is removed again;
- temporary files that a killed write left (`.NAME.*.tmp`, beside the run files and in
  figures/) are removed on start.

Tested in tests/test_rundir.py and tests/test_faults.py (the race, --overwrite beside
another run).
"""

import contextlib
import json
import re
import shutil
import uuid
from pathlib import Path

from pathmnist.errors import PathMNISTError
from pathmnist.files import folder_lock, held_tag, write_json

MARK = ".pathmnist-run.json"  # {"kind": ..., "id": ...}: which run this folder holds.
FIGURES = "figures"  # Every *.png in it is a figure the package drew.
TRAIN = ("config.json", "history.csv", "metrics.json", "report.md", "best.pt", "last.pt")
FAMILIES = {  # The files each family of runs writes at the top of its folder.
    "train": TRAIN,
    "search": ("search.json", "results.csv", "best_config.json", "report.md"),
    "study": ("study.json", "results.csv", "report.md"),
}
OWNED = tuple(dict.fromkeys(name for names in FAMILIES.values() for name in names))
# Where a family's member runs live, relative to its folder (as folder.py and ablation.py
# name them); a run anywhere else under it is another run.
MEMBERS = {
    "train": (),
    "search": (re.compile(r"[^/]+/epochs=\d+_seed=\d+"), re.compile(r"trial_\d+")),  # Optuna's.
    "study": (re.compile(r"[^/]+/[^/]+/seed=\d+"),),
}
KINDS = {  # Kind -> family. The library's own kinds are the families' names.
    "train": "train",
    "search": "search",
    "study": "study",
    "01_baseline": "train",
    "03_final_evaluation": "train",
    "02_tuning": "search",
    "04_stain_shift": "study",
}
RESUME_FILES = {"train": "last.pt", "search": "search.json", "study": "study.json"}
# Files only one family writes: they name the family of a folder without MARK.
_KEY_FILES = {
    "search": ("search.json", "best_config.json"),
    "study": ("study.json",),
    "train": ("config.json", "history.csv", "metrics.json", "best.pt", "last.pt"),
}
STARTED: list[Path] = []  # The run folders `start` began in this process (Ctrl-C's advice).
_DEPTH = 3  # How deep runs are looked for under a folder (a study's members are 3 down).


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


def read_mark(out) -> dict | None:
    """The folder's MARK ({"kind", "id"}), None where there is none; refuses a damaged one."""
    path = Path(out) / MARK
    if not path.exists():
        return None
    try:
        mark = json.loads(path.read_text())
        ok = isinstance(mark, dict) and mark.get("kind") in KINDS
        ok = ok and isinstance(mark.get("id"), str)
    except (OSError, ValueError, UnicodeDecodeError):
        ok = False
    if not ok:
        raise PathMNISTError(
            f"{path} is damaged, so which run {out} holds is unknown; choose another --out."
        )
    return mark


def run_id(out) -> str | None:
    """The id of the run in `out` (None for a folder without MARK)."""
    mark = read_mark(out)
    return mark["id"] if mark else None


def _family_of(out: Path, kind: str | None) -> str | None:
    """The family of the run in `out`: its MARK's, else the one its files name (report.md
    and results.csv, which several families write, count only when nothing else does)."""
    mark = read_mark(out)
    if mark:
        return KINDS[mark["kind"]]
    present = {n for n in OWNED if (out / n).is_file()}
    for family, names in _KEY_FILES.items():
        if present & set(names):
            return family
    if not present:
        return None
    fits = [f for f, names in FAMILIES.items() if present <= set(names)]
    return KINDS[kind] if kind and KINDS[kind] in fits else fits[0]


def _compatible(found: str, kind: str) -> bool:
    """A run of kind `found` may be resumed or replaced by a run of `kind`: the same kind,
    or the same family where one of them is the library's (fit beside 01)."""
    library = found in FAMILIES or kind in FAMILIES
    return found == kind or (KINDS[found] == KINDS[kind] and library)


def _is_run(path: Path) -> bool:
    return path.is_dir() and ((path / MARK).exists() or any((path / n).is_file() for n in OWNED))


def _scan(out: Path, family: str | None) -> tuple[list[Path], list[Path]]:
    """(member runs, other runs) in the sub-folders of `out`, down to _DEPTH."""
    members, others = [], []
    patterns = MEMBERS[family] if family else ()
    todo = [p for p in out.iterdir() if p.is_dir() and p.name != FIGURES]
    while todo:
        path = todo.pop()
        rel = path.relative_to(out).as_posix()
        if _is_run(path):
            (members if any(p.fullmatch(rel) for p in patterns) else others).append(path)
        elif rel.count("/") + 1 < _DEPTH:
            with contextlib.suppress(OSError):
                todo += [p for p in path.iterdir() if p.is_dir() and not p.is_symlink()]
    return sorted(members), sorted(others)


def temporaries(out) -> list[Path]:
    """The `.NAME.*.tmp` files a killed atomic write left, beside the run files and figures."""
    out = Path(out)
    return sorted([*out.glob(".*.tmp"), *(out / FIGURES).glob(".*.tmp")])


def owned_paths(out, kind: str | None = None) -> list[Path]:
    """The files and folders in `out` that its run wrote (temporary files included): its
    family's files, figures/*.png, its member folders; never another run's."""
    out = Path(out)
    if not out.is_dir():
        return []
    family = _family_of(out, kind)
    names = FAMILIES[family] if family else ()
    found = [out / name for name in names if (out / name).is_file()]
    found += sorted((out / FIGURES).glob("*.png")) + temporaries(out)
    return found + _scan(out, family)[0]


def holds_run(out) -> bool:
    """True when `out` holds an earlier run's files, its own or another's (the temporary
    files of a killed write alone are not a run: `start` removes them)."""
    out = Path(out)
    if not out.is_dir():
        return False
    return _is_run(out) or any(out.glob(f"{FIGURES}/*.png")) or bool(_scan(out, None)[1])


def _kind(out: Path, kind: str | None, resume_file: str | None) -> str:
    """The kind of the run starting in `out`: `kind`, else the one this process holds the
    folder for, else the library's kind for the resume file (a training run's by default)."""
    kind = kind or held_tag(out)
    if kind:
        return kind
    return {v: k for k, v in RESUME_FILES.items()}.get(resume_file or "last.pt", "train")


def check_start(out, resume: bool, overwrite: bool, resume_file=None, kind=None) -> Path:
    """Refuse a start that would lose or mix a run, touching nothing: another run is always
    refused; with neither flag, `out` must hold no run; with `resume`, its resume file."""
    out = check_out(out)
    kind = _kind(out, kind, resume_file)
    resume_file = resume_file or RESUME_FILES[KINDS[kind]]
    if resume and overwrite:
        raise PathMNISTError("--resume and --overwrite contradict each other; pass one of them.")
    nothing = f"there is nothing to resume in {out} (no {resume_file}); drop --resume to start"
    if not out.is_dir():
        if resume:
            raise PathMNISTError(f"{nothing} a new run.")
        return out
    never = "choose another --out (--overwrite never removes another run)"
    mark, family = read_mark(out), _family_of(out, kind)
    found = mark["kind"] if mark else family
    if found and not _compatible(found, kind):
        raise PathMNISTError(f"{out} holds a run of {found}, not of {kind}; {never}.")
    others = _scan(out, family or KINDS[kind])[1]
    if others:
        raise PathMNISTError(f"{out} holds another run in {others[0]}; {never}.")
    if resume:
        if not (out / resume_file).exists() and not unstarted(out):
            raise PathMNISTError(f"{nothing} a new run.")
    elif holds_run(out) and not overwrite:
        raise PathMNISTError(
            f"{out} already holds a run of {found or kind}; pass --resume to continue it, "
            "--overwrite to replace it (its files are deleted), or choose another --out."
        )
    return out


def unstarted(out) -> bool:
    """True for a training run stopped before its first epoch ended: its MARK, config.json
    and an empty history.csv at most, no checkpoint. `--resume` then starts it from the beginning,
    as Ctrl-C's message promises."""
    out = Path(out)
    if (out / "last.pt").exists() or (out / "best.pt").exists() or not out.is_dir():
        return False
    history = out / "history.csv"
    if history.exists() and len(history.read_text(errors="replace").splitlines()) > 1:
        return False
    names = {p.name for p in owned_paths(out) if not p.name.endswith(".tmp")}
    marked = (out / MARK).exists()  # Killed between marking the folder and config.json.
    return (bool(names) or marked) and names <= {"config.json", "history.csv"}


def clear(out, kind=None) -> None:
    """Remove every file and member folder of the run in `out`, and nothing else."""
    out = Path(out)
    for path in owned_paths(out, kind):
        if path.is_dir():
            shutil.rmtree(path)
            with contextlib.suppress(OSError):  # TRIAL/ of TRIAL/epochs=..., if now empty.
                for parent in path.relative_to(out).parents:
                    if parent != Path("."):
                        (out / parent).rmdir()
        else:
            path.unlink(missing_ok=True)
    (out / MARK).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        (out / FIGURES).rmdir()  # Only if now empty: a user's own file stays.


def remove_temporaries(out) -> None:
    """Delete the `.NAME.*.tmp` files that a killed atomic write left in `out`."""
    for tmp in temporaries(out):
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def lock(out, kind=None):
    """Hold `out` for this process (made if absent, removed again if a refused run leaves
    it empty); another process's run into it is refused with one sentence. Nested in the
    same process, it shares the outer hold (and its kind)."""
    with folder_lock(check_out(out), kind) as held:
        yield held


def hold(out, kind: str, resume: bool = False, overwrite: bool = False):
    """An example's whole run: refuse a start that would lose or mix a run (before the
    folder is made), lock `out`, check again, and keep the folder until the block ends,
    the last byte of the report written. `fit`, `grid_search` and `run_study` inside it
    share the hold and its kind."""
    check_start(out, resume, overwrite, kind=kind)
    return _hold(out, kind, resume, overwrite)


@contextlib.contextmanager
def _hold(out, kind, resume, overwrite):
    with lock(out, kind) as held:
        check_start(held, resume, overwrite, kind=kind)  # Again, now that it is ours.
        yield held


def start(out, resume: bool, overwrite: bool, resume_file=None) -> Path:
    """After every check: clear as `check_start` allows, remove temporary files and mark
    the folder with its run's kind and id. Call inside `lock(out)`."""
    out = check_start(out, resume, overwrite, resume_file)
    kind = _kind(out, None, resume_file)
    if overwrite or (resume and unstarted(out)):  # Overwrite, or a run stopped before epoch 1.
        clear(out, kind)
    remove_temporaries(out)
    mark = read_mark(out)
    if mark is None or (mark["kind"] != kind and mark["kind"] in FAMILIES):
        write_json(out / MARK, {"kind": kind, "id": mark["id"] if mark else uuid.uuid4().hex})
    STARTED.append(out)
    return out
