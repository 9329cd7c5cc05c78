"""The checked exercises: every starter in docs/exercises fails all of its oracle tests,
every worked solution in docs/solutions passes them all, and checking leaves the package
as it was. Also the harness's own errors and its command line."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from pathmnist import exercises
from pathmnist.errors import PathMNISTError
from pathmnist.evaluation import metrics
from pathmnist.model import resnet
from pathmnist.training import schedulers

ROOT = Path(__file__).resolve().parents[1]
STARTERS = sorted((ROOT / "docs" / "exercises").glob("*.py"))
SOLUTIONS = ROOT / "docs" / "solutions"


def test_every_starter_has_a_solution_with_the_same_contract():
    """Each starter has docs/solutions/<same name>.py replacing the same names and checked
    by the same tests; the starter's functions raise NotImplementedError."""
    assert len(STARTERS) >= 7
    for starter in STARTERS:
        ours, theirs = exercises.load(starter), exercises.load(SOLUTIONS / starter.name)
        assert ours.REPLACES == theirs.REPLACES, starter.name
        assert ours.ORACLE_TESTS == theirs.ORACLE_TESTS, starter.name
        assert "NotImplementedError" in starter.read_text()


def test_each_exercise_is_set_in_its_chapter():
    """A starter's docstring names its chapter ("chapter N"), and that chapter's page
    points the learner at the starter."""
    for starter in STARTERS:
        number = int(re.search(r"chapter (\d+)", starter.read_text()).group(1))
        (chapter,) = (ROOT / "docs").glob(f"{number:02d}_*.md")
        assert f"exercises/{starter.name}" in chapter.read_text(), (starter.name, chapter.name)


@pytest.mark.parametrize("starter", STARTERS, ids=[p.stem for p in STARTERS])
def test_starter_fails_and_solution_passes_the_oracle_tests(starter):
    """The untouched starter fails every one of its oracle tests; the worked solution
    passes every one; afterwards the package's own objects, and this session's hypothesis
    profile, are back in place."""
    module = exercises.load(starter)
    profile = settings.get_current_profile_name()
    before = {t: exercises._resolve(t) for t in module.REPLACES}
    originals = {t: vars(owner)[name] for t, (owner, name) in before.items()}

    failing = exercises.check(starter, quiet=True)
    assert failing.outcomes and set(failing.outcomes.values()) == {"failed"}, failing.outcomes
    passing = exercises.check(SOLUTIONS / starter.name, quiet=True)
    assert passing.passed, passing.outcomes
    assert passing.outcomes.keys() == failing.outcomes.keys()

    for target, (owner, name) in before.items():
        assert vars(owner)[name] is originals[target], target
    assert settings.get_current_profile_name() == profile


def test_install_swaps_and_restores():
    """Inside install() the package's names are the file's objects, also for callers that
    look them up at call time; after it they are the package's again, even on an error."""
    original = schedulers.StepLR._closed_form
    with exercises.install(SOLUTIONS / "step_lr.py") as module:
        assert schedulers.StepLR._closed_form is module.closed_form
    assert schedulers.StepLR._closed_form is original
    with pytest.raises(RuntimeError), exercises.install(SOLUTIONS / "auc.py"):
        assert metrics._ovr_auc.__module__ == "exercise_auc"
        raise RuntimeError("a failing check")
    assert metrics._ovr_auc.__module__ == "pathmnist.evaluation.metrics"
    assert resnet.BasicBlock.forward.__module__ == "pathmnist.model.resnet"


def test_node_ids_find_each_test_in_its_file():
    """Test names (with an optional parameter id) become node ids in the file defining them."""
    ids = exercises.node_ids(["test_torch_golden_get_last_lr", "test_stage_shapes_at_64[x]"])
    assert ids == [
        f"{ROOT / 'tests' / 'test_schedulers.py'}::test_torch_golden_get_last_lr",
        f"{ROOT / 'tests' / 'test_resnet.py'}::test_stage_shapes_at_64[x]",
    ]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("X = 1\n", "is not an exercise"),
        ("REPLACES = {'pathmnist.evaluation.metrics._ovr_auc': 'f'}\nORACLE_TESTS = ('test_a',)\n",
         "defines no function 'f'"),
        ("REPLACES = {'pathmnist.evaluation.metrics.nothing': 'f'}\nORACLE_TESTS = ('test_a',)\n"
         "def f():\n    pass\n", "pathmnist.evaluation.metrics.nothing does not exist"),
    ],
)  # fmt: skip
def test_bad_exercise_files_are_named(tmp_path, text, words):
    """A file that is not an exercise, or names what does not exist, is one sentence."""
    path = tmp_path / "bad.py"
    path.write_text(text)
    with pytest.raises(PathMNISTError, match=words), exercises.install(path):
        pass


def test_unknown_tests_and_missing_files_are_named(tmp_path):
    """An unknown test name, a malformed one, a missing file and a missing tests folder
    each raise one sentence."""
    with pytest.raises(PathMNISTError, match=r"no file in .* defines test_nowhere"):
        exercises.node_ids(["test_nowhere"])
    with pytest.raises(PathMNISTError, match="is not a test name"):
        exercises.node_ids(["tests/test_x.py::test_y"])
    with pytest.raises(PathMNISTError, match="there is no exercise file"):
        exercises.load(tmp_path / "absent.py")
    with pytest.raises(PathMNISTError, match="no oracle tests at"):
        exercises.node_ids(["test_a"], tests_dir=tmp_path / "tests")


def test_command_line_list_and_errors(capsys):
    """`list` names each starter and what it replaces; a bad path exits 2 with `error:`."""
    assert exercises.main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(f"docs/exercises/{p.name}" in out for p in STARTERS)
    assert "pathmnist.model.resnet.BasicBlock.forward" in out
    assert exercises.main(["check", "no_such_exercise.py"]) == 2
    assert capsys.readouterr().err.startswith("error: there is no exercise file")


@pytest.mark.slow
def test_command_line_check_exit_codes():
    """`python -m pathmnist.exercises check` exits 1 on the starter, 0 on the solution, and
    ends with a one-line verdict."""
    cmd = [sys.executable, "-m", "pathmnist.exercises", "check"]
    run = {
        kind: subprocess.run([*cmd, str(path)], cwd=ROOT, capture_output=True, text=True)
        for kind, path in (("starter", STARTERS[0]), ("solution", SOLUTIONS / STARTERS[0].name))
    }
    assert run["starter"].returncode == 1, run["starter"].stdout[-2000:]
    assert run["starter"].stdout.strip().splitlines()[-1].endswith("read the failures above.")
    assert run["solution"].returncode == 0, run["solution"].stdout[-2000:]
    assert "oracle tests pass with your code" in run["solution"].stdout
