"""The course quotes its lab-bench runs correctly: every README region marked
`<!-- results:NAME -->` equals what docs/results/quotes.py renders from the run files, the
run files exist with the command and machine that made them, and the docs read their
numbers from those files (no number typed by hand)."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


def _quotes():
    spec = importlib.util.spec_from_file_location("quotes", RESULTS / "quotes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_regions_equal_their_rendering_from_the_run_files():
    """Each quoted region is exactly the rendering of its run files."""
    quotes = _quotes()
    found = quotes.regions((ROOT / "README.md").read_text())
    assert found, "README.md quotes no run"
    for name, text in found.items():
        assert text == quotes.RENDER[name](), f"README region {name} is stale: run quotes.py"


@pytest.mark.parametrize("name", ["lesson1", "lesson2", "lesson3", "lesson4", "lesson5"])
def test_run_files_record_their_command_and_machine(name):
    """run.json says what ran, on what, when, and how long it took."""
    run = json.loads((RESULTS / name / "run.json").read_text())
    assert run["command"].startswith("python examples/")
    assert run["seconds"] > 0 and run["cpu"] and run["date"] and run["torch"]


def test_chapters_quote_runs_through_the_files():
    """The chapters that show lab-bench numbers read them from docs/results in executed
    blocks, and no longer carry the numbers of the first version's one-seed runs."""
    for chapter, name in (
        ("08_tuning.md", "lesson2"),
        ("09_final_evaluation.md", "lesson3"),
        ("12_stain_shift.md", "lesson4"),
        ("13_inside_the_model.md", "lesson5"),
    ):
        text = (ROOT / "docs" / chapter).read_text()
        assert f'R / "{name}"' in text, chapter
        for stale in ("0.5825", "0.9487", "0.9150", "0.0337"):
            assert stale not in text, (chapter, stale)
