"""pathmnist.training.rundir: a run folder holding a run is refused before anything in it changes,
--overwrite removes exactly the files and member folders of its own kind of run (a user's
notes.txt and figures/mine.jpg survive), another run (another kind, or a run in a
sub-folder) is refused with or without --overwrite and nothing there is touched, a folder
one process holds is refused to another (and freed when that process dies, even by
SIGKILL; a nested hold in the same process shares it), a refused run leaves no folder,
start removes the temporary files a killed write left (figures/ too), and an --out that
is empty, a file or under a file is refused."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from pathmnist.errors import PathMNISTError
from pathmnist.files import LOCK
from pathmnist.training import rundir

# A Python process that takes the lock on argv[1], says so, and holds it until stdin closes.
HOLDER = textwrap.dedent(
    """
    import sys
    from pathmnist.training import rundir
    with rundir.lock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.read()
    """
)


def snapshot(folder):
    """Every file under `folder` with its bytes and modification time."""
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def files(folder):
    """The relative paths of every file under `folder`."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def make_run(out, family="search"):
    """A finished run folder of `family` as the examples leave it (a search with a trial
    folder), plus the user's own files and a killed write's temporary files."""
    out.mkdir(parents=True)
    for name in rundir.FAMILIES[family]:
        (out / name).write_text(name)
    (out / "figures").mkdir()
    (out / "figures" / "loss_curve.png").write_bytes(b"png")
    (out / "figures" / "mine.jpg").write_bytes(b"the user's photo")
    (out / "notes.txt").write_text("what I tried")
    (out / "mydata").mkdir()  # A folder of the user's: not a run, so never removed.
    (out / "mydata" / "table.csv").write_text("a,b")
    if family == "search":
        trial = out / "adam_lr=0.001" / "epochs=3_seed=0"
        trial.mkdir(parents=True)
        (trial / "history.csv").write_text("x")
    (out / ".history.csv.k2j3.tmp").write_text("half a file")
    (out / "figures" / ".roc.png.k2j3.tmp").write_text("half a figure")


@pytest.fixture
def holder(tmp_path):
    """Start a process holding the lock on tmp_path / "run"; yield it; end it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "run")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    if proc.poll() is None:
        proc.stdin.close()
        proc.wait(timeout=60)


# check_out


@pytest.mark.parametrize("out", ["", "   ", None])
def test_empty_out_is_refused(out):
    """An empty --out is one sentence with an example of a good one."""
    with pytest.raises(PathMNISTError, match=r"--out is empty; .*--out runs/my_run"):
        rundir.check_out(out)


def test_out_that_is_a_file_or_under_a_file_is_refused(tmp_path):
    """--out naming a file, or a folder under a file, names the file in the way."""
    (tmp_path / "f.txt").write_text("x")
    for out in (tmp_path / "f.txt", tmp_path / "f.txt" / "run", tmp_path / "f.txt" / "a" / "b"):
        with pytest.raises(PathMNISTError, match=rf"{tmp_path / 'f.txt'} is a file"):
            rundir.check_out(out)
        with pytest.raises(PathMNISTError, match="is a file"):
            rundir.start(out, resume=False, overwrite=False)
        with pytest.raises(PathMNISTError, match="is a file"), rundir.lock(out):
            pass
    assert files(tmp_path) == ["f.txt"]


def test_absent_and_empty_folders_are_fine(tmp_path):
    """A folder that does not exist yet, or an empty one, holds no run."""
    assert rundir.check_out(str(tmp_path / "a" / "b")) == tmp_path / "a" / "b"
    assert rundir.check_start(tmp_path / "new", False, False) == tmp_path / "new"
    assert not rundir.holds_run(tmp_path / "new") and not rundir.holds_run(tmp_path)
    assert not (tmp_path / "new").exists()  # Checking creates nothing.


# Refuse, resume, overwrite


def test_user_files_alone_are_not_a_run(tmp_path):
    """A folder with only the user's files (and a lock file) is used as it is."""
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / LOCK).write_text("")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "mine.jpg").write_bytes(b"x")
    assert not rundir.holds_run(tmp_path)
    rundir.start(tmp_path, resume=False, overwrite=False)
    assert files(tmp_path) == sorted([LOCK, rundir.MARK, "figures/mine.jpg", "notes.txt"])


@pytest.mark.parametrize(
    "name", [*rundir.OWNED, "figures/acc.png", "adam_lr=0.001/epochs=3_seed=0/history.csv"]
)
def test_any_file_of_ours_makes_a_run(tmp_path, name):
    """One file this package writes (or a trial folder holding one) is an earlier run."""
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text("x")
    assert rundir.holds_run(tmp_path)
    with pytest.raises(PathMNISTError, match=r"already holds a run of .*; pass --resume"):
        rundir.check_start(tmp_path, resume=False, overwrite=False, kind=rundir.KINDS.get(
            "search" if name in ("search.json", "best_config.json", "results.csv")
            or "seed" in name else
            "study" if name == "study.json" else "train"))  # fmt: skip


@pytest.mark.parametrize(
    ("resume", "overwrite", "words"),
    [
        (False, False, "already holds a run of search; pass --resume to continue it"),
        (True, True, "--resume and --overwrite contradict each other"),
    ],
)
def test_refusals_touch_nothing(tmp_path, resume, overwrite, words):
    """Starting into a folder holding a run without a flag, or with both flags, is one
    sentence, and every file (temporary files included) is left as it was."""
    out = tmp_path / "run"
    make_run(out)
    before = snapshot(out)
    for call in (rundir.check_start, rundir.start):
        with pytest.raises(PathMNISTError, match=words) as info:
            call(out, resume, overwrite, "search.json")
        assert "\n" not in str(info.value)
    assert snapshot(out) == before


def test_resume_needs_the_resume_file(tmp_path):
    """--resume without last.pt (or search.json for a search) says there is nothing to
    resume and touches nothing; with it, the folder is kept whole."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "history.csv").write_text("header\nan epoch\n")  # A run past its first epoch.
    with pytest.raises(PathMNISTError, match=r"nothing to resume in .*\(no last\.pt\); drop"):
        rundir.start(out, resume=True, overwrite=False)
    with pytest.raises(PathMNISTError, match=r"holds a run of train, not of search; choose"):
        rundir.start(out, resume=True, overwrite=False, resume_file="search.json")
    assert files(out) == ["history.csv"]
    (out / "last.pt").write_text("x")
    (out / ".last.pt.abc.tmp").write_text("half")
    assert rundir.start(out, resume=True, overwrite=False) == out
    assert files(out) == [rundir.MARK, "history.csv", "last.pt"]  # The temporary file went.


def test_resume_of_a_run_stopped_before_its_first_epoch_starts_it_again(tmp_path):
    """A folder holding only config.json and an empty history.csv (stopped before epoch 1
    ended) is `unstarted`: --resume clears it and starts again, as Ctrl-C's message says;
    a user's own file there stays."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "history.csv").write_text("epoch,train_loss\n")
    (out / "notes.txt").write_text("mine")
    assert rundir.unstarted(out)
    assert rundir.start(out, resume=True, overwrite=False) == out
    assert files(out) == [rundir.MARK, "notes.txt"]
    (out / "history.csv").write_text("epoch,train_loss\n1,0.5\n")
    assert not rundir.unstarted(out)


def test_overwrite_removes_only_what_the_package_wrote(tmp_path):
    """--overwrite deletes the search's files, the figures it drew, its trial folders (the
    emptied TRIAL/ too) and temporary files; the user's notes.txt, figures/mine.jpg and own
    folder survive."""
    out = tmp_path / "run"
    make_run(out)
    rundir.start(out, resume=False, overwrite=True, resume_file="search.json")
    assert files(out) == [rundir.MARK, "figures/mine.jpg", "mydata/table.csv", "notes.txt"]
    assert not (out / "adam_lr=0.001").exists()
    assert (out / "figures" / "mine.jpg").read_bytes() == b"the user's photo"
    assert rundir.owned_paths(out) == []


def test_overwrite_removes_an_emptied_figures_folder(tmp_path):
    """When figures/ held only the package's figures, it goes too."""
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "roc_val.png").write_bytes(b"png")
    (tmp_path / "metrics.json").write_text("{}")
    rundir.clear(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_owned_paths_lists_exactly_ours(tmp_path):
    """owned_paths names the family's files, figures/*.png, temporary files (figures' too)
    and the member trial folders."""
    make_run(tmp_path / "run")
    owned = {
        p.relative_to(tmp_path / "run").as_posix() for p in rundir.owned_paths(tmp_path / "run")
    }
    expected = {*rundir.FAMILIES["search"], "figures/loss_curve.png", ".history.csv.k2j3.tmp",
                "figures/.roc.png.k2j3.tmp", "adam_lr=0.001/epochs=3_seed=0"}  # fmt: skip
    assert owned == expected
    assert rundir.owned_paths(tmp_path / "absent") == []


# Temporary files


def test_start_removes_temporary_files_only(tmp_path):
    """start deletes `.NAME.*.tmp` files (a killed atomic write's leftovers) and keeps
    files that merely end in .tmp."""
    (tmp_path / ".best.pt.x1y2.tmp").write_bytes(b"half")
    (tmp_path / ".history.csv.abc.tmp").write_text("half")
    (tmp_path / "notes.tmp").write_text("the user's")
    assert not rundir.holds_run(tmp_path)  # Leftovers of a killed write are not a run.
    rundir.start(tmp_path, resume=False, overwrite=False)
    assert files(tmp_path) == [rundir.MARK, "notes.tmp"]


# The lock


def test_a_second_process_is_refused_while_the_first_holds_the_lock(tmp_path, holder):
    """While another process holds the folder, lock() is one sentence naming it; when
    that process ends, the folder is free again."""
    out = tmp_path / "run"
    with pytest.raises(PathMNISTError, match=r"another run is writing into .* right now; wait"):
        with rundir.lock(out):
            pytest.fail("the lock was taken twice")
    holder.stdin.close()
    assert holder.wait(timeout=60) == 0
    with rundir.lock(out) as held:
        assert held == out


def test_a_killed_holder_leaves_no_stale_lock(tmp_path, holder):
    """kill -9 of the holder frees the lock: the kernel drops a dead process's flock."""
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    with rundir.lock(tmp_path / "run"):
        pass


def test_a_nested_hold_in_the_same_process_shares_it(tmp_path):
    """fit inside an example's hold locks the same folder again: the same process shares
    its hold (and its kind), and leaving the outer one frees the folder and its lock file."""
    with rundir.lock(tmp_path, "01_baseline") as out:
        assert out == tmp_path and (tmp_path / LOCK).exists()
        with rundir.lock(tmp_path / "."):
            rundir.start(tmp_path, resume=False, overwrite=False)
        assert rundir.read_mark(tmp_path)["kind"] == "01_baseline"
    assert not (tmp_path / LOCK).exists()
    with rundir.lock(tmp_path / "."):
        pass


def test_lock_creates_the_folder_and_a_refused_run_removes_it(tmp_path):
    """lock() makes a missing --out (and its parents) and holds only the lock file in it;
    a run refused inside leaves neither the folders nor the lock file behind."""
    with rundir.lock(tmp_path / "a" / "b") as out:
        assert files(out) == [LOCK]
    assert list(tmp_path.iterdir()) == []
    with (
        pytest.raises(PathMNISTError, match="bad"),
        rundir.hold(tmp_path / "c" / "d", "01_baseline"),
    ):
        raise PathMNISTError("bad")
    assert list(tmp_path.iterdir()) == []


# Another run: refused with or without --overwrite, nothing touched


def train_run(out, kind="01_baseline"):
    out.mkdir(parents=True)
    for name in ("config.json", "history.csv", "best.pt", "metrics.json", "report.md"):
        (out / name).write_text(name)
    (out / rundir.MARK).write_text(json.dumps({"kind": kind, "id": kind}))


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_of_other_runs_is_refused_with_or_without_overwrite(tmp_path, overwrite):
    """--out runs over runs/01_baseline and runs/my_best_run: refused, whatever the flag,
    with a sentence that suggests no flag that would lose data; nothing changes."""
    train_run(tmp_path / "runs" / "01_baseline")
    train_run(tmp_path / "runs" / "my_best_run", "03_final_evaluation")
    before = snapshot(tmp_path)
    for kind in ("01_baseline", "02_tuning", "04_stain_shift"):
        with pytest.raises(
            PathMNISTError, match=r"holds another run in .*choose another --out"
        ) as e:
            rundir.hold(tmp_path / "runs", kind, overwrite=overwrite)
        assert "pass --overwrite" not in str(e.value)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("found", "kind"),
    [("01_baseline", "03_final_evaluation"), ("03_final_evaluation", "01_baseline"),
     ("01_baseline", "02_tuning"), ("02_tuning", "04_stain_shift")],
)  # fmt: skip
def test_another_examples_run_is_refused_even_with_overwrite(tmp_path, found, kind):
    """A folder holding another example's run is never replaced: --overwrite is refused
    too, and nothing changes."""
    out = tmp_path / "run"
    if rundir.KINDS[found] == "train":
        train_run(out, found)
    else:
        make_run(out, rundir.KINDS[found])
        (out / rundir.MARK).write_text(json.dumps({"kind": found, "id": "x"}))
    before = snapshot(tmp_path)
    for resume, overwrite in ((False, True), (True, False), (False, False)):
        with pytest.raises(PathMNISTError, match=f"holds a run of {found}, not of {kind}"):
            rundir.hold(out, kind, resume, overwrite)
    assert snapshot(tmp_path) == before


def test_a_run_in_a_sub_folder_of_a_training_run_is_refused(tmp_path):
    """A training run has no members: a run inside it is another run, kept whole."""
    train_run(tmp_path / "run")
    train_run(tmp_path / "run" / "inner")
    with pytest.raises(PathMNISTError, match=r"another run in .*inner"):
        rundir.check_start(tmp_path / "run", False, True, kind="01_baseline")


def test_the_librarys_fit_may_resume_an_examples_run_of_its_family(tmp_path):
    """fit (kind "train") resumes or replaces a 01 run: the same files; the mark keeps 01."""
    train_run(tmp_path / "run")
    (tmp_path / "run" / "last.pt").write_text("x")
    assert rundir.check_start(tmp_path / "run", True, False) == tmp_path / "run"


def test_a_damaged_mark_is_refused(tmp_path):
    """A hand-edited MARK: which run the folder holds is unknown, so nothing is removed."""
    train_run(tmp_path / "run")
    (tmp_path / "run" / rundir.MARK).write_text("{not json")
    with pytest.raises(PathMNISTError, match=r"is damaged.*choose another --out"):
        rundir.check_start(tmp_path / "run", False, True, kind="01_baseline")


def test_a_run_killed_right_after_marking_its_folder_resumes_from_the_start(tmp_path):
    """Only MARK there (killed before config.json): unstarted, so --resume starts it again
    (with its kind kept) instead of saying there is nothing to resume."""
    with rundir.lock(tmp_path, "01_baseline"):
        rundir.start(tmp_path, resume=False, overwrite=False)
    assert rundir.holds_run(tmp_path) and rundir.unstarted(tmp_path)
    with rundir.lock(tmp_path, "01_baseline"):
        assert rundir.start(tmp_path, resume=True, overwrite=False) == tmp_path
    assert files(tmp_path) == [rundir.MARK]


def test_optuna_trial_folders_are_members_of_their_search(tmp_path):
    """A search's trials under `trial_0003/` (the optuna strategy's) are its own: --resume
    accepts them and --overwrite removes them; a `trial_x/` run is another run."""
    make_run(tmp_path / "run")
    (tmp_path / "run" / "trial_0003").mkdir()
    (tmp_path / "run" / "trial_0003" / "history.csv").write_text("x")
    assert rundir.check_start(tmp_path / "run", True, False, "search.json")
    rundir.start(tmp_path / "run", resume=False, overwrite=True, resume_file="search.json")
    assert not (tmp_path / "run" / "trial_0003").exists()
    (tmp_path / "run" / "trial_x").mkdir()
    (tmp_path / "run" / "trial_x" / "history.csv").write_text("x")
    with pytest.raises(PathMNISTError, match="another run in"):
        rundir.check_start(tmp_path / "run", False, True, "search.json")
