"""The package's layout: stage subpackages that mirror the course, a lower stage never
importing a higher one, small modules, and docstrings that cite files that exist.

The stages, lowest first: the top-level helpers (errors, checks, files, config, device,
exercises), then data, augment, model, evaluation, training, studies, report; `cli` sits
above all of them, because it wires the examples' flags to every stage.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pathmnist"
STAGES = ["data", "augment", "model", "evaluation", "training", "studies", "report"]
TOP = {"errors": 0, "checks": 0, "files": 0, "config": 0, "device": 0, "exercises": 0}
CLI_RANK = len(STAGES) + 1
MAX_LINES = 300


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def dotted(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def rank(name: str) -> int:
    """pathmnist.<stage>... -> 1 + the stage's index; top-level modules 0, cli the highest."""
    parts = name.split(".")
    if len(parts) == 1:
        return 0
    if parts[1] in STAGES:
        return 1 + STAGES.index(parts[1])
    if parts[1] == "cli":
        return CLI_RANK
    return TOP.get(parts[1], 0)


def imported(path: Path):
    """Every pathmnist module a file imports (at any depth: function-level imports too)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pathmnist"):
            for alias in node.names:
                yield f"{node.module}.{alias.name}" if node.module == "pathmnist" else node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("pathmnist"))


def test_the_top_level_is_small_and_the_stages_are_subpackages():
    """At most 10 modules at the top, every stage a subpackage, no module named io.py."""
    top = [p.name for p in PACKAGE.glob("*.py")]
    assert len(top) <= 10, sorted(top)
    for stage in STAGES:
        assert (PACKAGE / stage / "__init__.py").is_file(), stage
    assert not list(PACKAGE.rglob("io.py")), "io.py shadows the standard library"


@pytest.mark.parametrize("path", modules(), ids=lambda p: dotted(p))
def test_no_module_imports_a_higher_stage(path):
    """A module may import its own stage and the stages below it, never one above."""
    own = rank(dotted(path))
    higher = sorted({m for m in imported(path) if rank(m) > own})
    assert not higher, f"{dotted(path)} (stage {own}) imports {higher}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: dotted(p))
def test_modules_are_small_and_say_what_they_are(path):
    """At most 300 lines, a module docstring, and no matplotlib.use (it would switch a
    notebook to a backend that does not display)."""
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_LINES, f"{dotted(path)}: {len(text.splitlines())} lines"
    assert ast.get_docstring(ast.parse(text)), f"{dotted(path)} has no docstring"
    assert "matplotlib.use(" not in text


def test_cited_test_files_exist():
    """Every tests/test_*.py a module's text cites is a file in tests/."""
    missing = {}
    for path in modules():
        for cited in re.findall(r"tests/(test_\w+\.py)", path.read_text()):
            if not (ROOT / "tests" / cited).is_file():
                missing.setdefault(dotted(path), []).append(cited)
    assert not missing, missing


def test_rank_orders_the_stages():
    """The helper itself: data is below training, report above studies, cli above all."""
    assert rank("pathmnist.errors") < rank("pathmnist.data.dataset") < rank("pathmnist.model")
    assert rank("pathmnist.evaluation.metrics") < rank("pathmnist.training.fit")
    assert rank("pathmnist.studies.grid") < rank("pathmnist.report.plots") < rank("pathmnist.cli")


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_says_what_lives_where(stage):
    """A stage's __init__ docstring names every module in it, so a newcomer opening the
    folder reads its map first."""
    doc = ast.get_docstring(ast.parse((PACKAGE / stage / "__init__.py").read_text())) or ""
    modules = sorted(p.stem for p in (PACKAGE / stage).glob("*.py") if p.stem != "__init__")
    missing = [m for m in modules if f"`{m}`" not in doc]
    assert not missing, f"pathmnist/{stage}/__init__.py does not name {missing}"
