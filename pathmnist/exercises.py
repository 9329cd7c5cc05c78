"""Checked exercises: run the package's own oracle tests against a learner's code.

CS231n gives its students starter code with the bodies removed and a gradient check to
run against their own version; this course has a better harness at hand, the oracle tests
that check every hand-written part against torchvision, torch, scikit-learn or Keras. An
exercise file (docs/exercises/<name>.py) holds the learner's function(s) and two constants:

    REPLACES = {"pathmnist.evaluation.metrics._ovr_auc": "ovr_auc"}  # package -> this file
    ORACLE_TESTS = ("test_sklearn_toy_macro_auc", ...)  # test functions in tests/test_*.py

`install(path)` puts the file's objects in the package's place (a module function, or a
method such as "pathmnist.model.resnet.BasicBlock.forward"), so every caller inside the package
uses them; `check(path)` does that, runs the named tests with pytest, puts the package's
own code back, and says how many passed:

    python -m pathmnist.exercises check docs/exercises/auc.py
    python -m pathmnist.exercises list

A test is named by its function name (found in whichever tests/test_*.py defines it), with
an optional pytest parameter id: "test_x[resnet18-9]". The test modules are imported
afresh while the swap is in place, so a test that imported the function by name sees the
learner's version too. pytest is a development tool, imported only by `check`.

Tested in tests/test_exercises.py: every starter in docs/exercises fails all its oracle
tests, every worked solution in docs/solutions passes them all, and the package is
unchanged afterwards.
"""

import argparse
import contextlib
import importlib
import importlib.util
import io
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pathmnist.errors import PathMNISTError

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"  # The oracle tests of a source checkout (pip install -e .).
EXERCISES = ROOT / "docs" / "exercises"
_TEST_NAME = re.compile(r"^(test_\w+)(\[[^\]]*\])?$")


def load(path):
    """Import an exercise file as a module and check its REPLACES and ORACLE_TESTS."""
    path = Path(path)
    if not path.is_file():
        raise PathMNISTError(
            f"there is no exercise file at {path}; pass e.g. docs/exercises/auc.py."
        )
    spec = importlib.util.spec_from_file_location(f"exercise_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    replaces = getattr(module, "REPLACES", None)
    tests = getattr(module, "ORACLE_TESTS", None)
    if not isinstance(replaces, dict) or not replaces or not tests:
        raise PathMNISTError(
            f"{path} is not an exercise: it needs REPLACES = {{'pathmnist.<module>.<name>': "
            "'<name in this file>'}} and ORACLE_TESTS = ('test_...', ...)."
        )
    for target, name in replaces.items():
        if not callable(getattr(module, name, None)):
            raise PathMNISTError(f"{path} defines no function {name!r} to replace {target}.")
    return module


def _resolve(target: str):
    """(owner, attribute) for a dotted name: the longest importable module prefix, then
    attributes (a class, then its method)."""
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for name in parts[cut:-1]:
                owner = getattr(owner, name)
        except AttributeError:
            break
        if parts[-1] in vars(owner):
            return owner, parts[-1]
        break
    raise PathMNISTError(f"{target} does not exist in the package; fix the exercise's REPLACES.")


@contextlib.contextmanager
def install(path):
    """Within the block, every REPLACES target is the exercise file's object; the
    package's own objects come back afterwards, whatever happens. Yields the module."""
    module = load(path)
    saved = []
    try:
        for target, name in module.REPLACES.items():
            owner, attribute = _resolve(target)
            saved.append((owner, attribute, vars(owner)[attribute]))
            setattr(owner, attribute, getattr(module, name))
        yield module
    finally:
        for owner, attribute, original in reversed(saved):
            setattr(owner, attribute, original)


def node_ids(tests, tests_dir=TESTS) -> list[str]:
    """pytest node ids ("tests/test_<module>.py::test_y[id]") of the named test functions."""
    tests_dir = Path(tests_dir)
    if not tests_dir.is_dir():
        raise PathMNISTError(
            f"there are no oracle tests at {tests_dir}; check exercises from a clone of the "
            "repository installed with pip install -e '.[dev]'."
        )
    sources = {p: p.read_text() for p in sorted(tests_dir.glob("test_*.py"))}
    ids = []
    for test in tests:
        match = _TEST_NAME.match(test)
        if not match:
            raise PathMNISTError(
                f"{test!r} is not a test name; use 'test_name' or 'test_name[id]'."
            )
        name, param = match.groups()
        homes = [p for p, text in sources.items() if re.search(rf"^def {name}\(", text, re.M)]
        if len(homes) != 1:
            where = "no" if not homes else "more than one"
            raise PathMNISTError(
                f"{where} file in {tests_dir} defines {name}; fix the exercise's ORACLE_TESTS."
            )
        ids.append(f"{homes[0]}::{name}{param or ''}")
    return ids


@dataclass
class CheckResult:
    """What `check` found: each oracle test's outcome ("passed", "failed", "skipped")."""

    exercise: str
    outcomes: dict[str, str] = field(default_factory=dict)
    exit_code: int = 0

    @property
    def passed(self) -> bool:
        return bool(self.outcomes) and all(o == "passed" for o in self.outcomes.values())

    def summary(self) -> str:
        n = len(self.outcomes)
        good = sum(o == "passed" for o in self.outcomes.values())
        if self.passed:
            return f"{self.exercise}: all {n} oracle tests pass with your code."
        return f"{self.exercise}: {good} of {n} oracle tests pass; read the failures above."


class _Outcomes:
    """A pytest plugin that records each test's outcome (the call phase decides, a failed
    setup counts as failed)."""

    def __init__(self):
        self.outcomes = {}

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            self.outcomes[report.nodeid.split("::", 1)[1]] = report.outcome


@contextlib.contextmanager
def _fresh_test_modules(tests_dir):
    """Set aside the modules imported from `tests_dir` and drop the ones the block imports,
    so each check imports the test files anew (with the swap in place)."""
    tests_dir = os.path.abspath(tests_dir)

    def ours(module):  # String work only: thousands of modules are loaded.
        file = getattr(module, "__file__", None)
        return isinstance(file, str) and os.path.dirname(os.path.abspath(file)) == tests_dir

    stashed = {name: m for name, m in list(sys.modules.items()) if ours(m)}
    for name in stashed:
        del sys.modules[name]
    try:
        yield
    finally:
        for name, m in list(sys.modules.items()):
            if ours(m):
                del sys.modules[name]
        sys.modules.update(stashed)


@contextlib.contextmanager
def _hypothesis_profile():
    """Yield the pytest arguments for a hypothesis profile fit for checking exercises:
    derandomized (the same examples on every run, so feedback does not change between
    runs), and without the explain phase, which takes seconds per failing test to say which
    part of a failing input mattered (a starter fails every test, so it would dominate).
    The profile that was loaded before comes back afterwards."""
    try:
        from hypothesis import HealthCheck, Phase, settings
    except ImportError:
        yield []
        return
    phases = [p for p in Phase if p is not Phase.explain]
    settings.register_profile(
        "pathmnist-exercise",
        derandomize=True,
        deadline=None,
        phases=phases,
        suppress_health_check=[HealthCheck.too_slow],
    )
    previous = settings.get_current_profile_name()
    try:
        yield ["--hypothesis-profile", "pathmnist-exercise"]
    finally:
        settings.load_profile(previous)


def check(path, tests_dir=TESTS, pytest_args=(), quiet=False) -> CheckResult:
    """Run the exercise's ORACLE_TESTS against its code; return what passed."""
    try:
        import pytest  # A development tool: pip install -e ".[dev]".
    except ImportError:
        raise PathMNISTError(
            "checking an exercise needs pytest; pip install -e '.[dev]'."
        ) from None
    path = Path(path)
    ids = node_ids(load(path).ORACLE_TESTS, tests_dir)
    recorder = _Outcomes()
    output = io.StringIO()  # With quiet, pytest's report goes here and is dropped.
    with install(path), _fresh_test_modules(tests_dir), _hypothesis_profile() as profile:
        # rootdir: the checkout, so pytest reads tox.ini's [pytest] section and conftest.py.
        args = [*ids, "--rootdir", str(Path(tests_dir).parent), "-p", "no:cacheprovider",
                "--tb=short", "-W", "ignore::pytest.PytestAssertRewriteWarning",
                # Its session-end sweep runs gc.collect() five times over torch's heap.
                "-p", "no:unraisableexception", *profile, *pytest_args]  # fmt: skip
        with contextlib.redirect_stdout(output) if quiet else contextlib.nullcontext():
            code = pytest.main(args, plugins=[recorder])
    if code in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR,
                pytest.ExitCode.USAGE_ERROR):  # fmt: skip
        raise PathMNISTError(
            f"pytest could not collect the oracle tests of {path} (exit code {int(code)}); "
            "read its report above and fix the error it names."
        )
    names = [i.split("::", 1)[1] for i in ids]
    missing = [
        n for n in names if not any(o == n or o.startswith(n + "[") for o in recorder.outcomes)
    ]
    if missing:
        raise PathMNISTError(
            f"pytest did not run {', '.join(missing)} (exit code {int(code)}); fix the "
            f"ORACLE_TESTS of {path} (a test may have been renamed or its parameter ids changed)."
        )
    return CheckResult(path.name, recorder.outcomes, int(code))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pathmnist.exercises",
        description="Run the package's oracle tests against your solution of an exercise.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("check", help="check an exercise file, e.g. docs/exercises/auc.py")
    run.add_argument("path", help="your exercise file")
    run.add_argument("pytest_args", nargs="*", help="more pytest arguments, after --")
    sub.add_parser("list", help="list the exercises and what each replaces")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            for path in sorted(EXERCISES.glob("*.py")):
                targets = ", ".join(load(path).REPLACES)
                print(f"{path.relative_to(ROOT)}: {targets}")
            return 0
        result = check(args.path, pytest_args=args.pytest_args)
    except PathMNISTError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
