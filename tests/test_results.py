"""The course quotes its lab-bench runs correctly: every README region marked
`<!-- results:NAME -->` equals what docs/results/quotes.py renders from the run files, the
run files exist with the command and machine that made them, the docs read their numbers
from those files (no number typed by hand), and every verdict the chapters generate
agrees with the paired intervals of those files."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

from pathmnist.evaluation import decision
from pathmnist.report import verdicts
from pathmnist.studies import ablation, folder, grid

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


# The verdicts the chapters print (pathmnist.report.verdicts) against the run files: a
# sentence ranks two things ("higher", "lower") only when its paired interval excludes 0,
# and says "not established" only when it includes 0.
DIFF = re.compile(r"difference ([+-]\d\.\d+) \[([+-]\d\.\d+), ([+-]\d\.\d+)\]")


SHARE = re.compile(r"(-?\d+)% \[(-?\d+)%, (-?\d+)%\]")


def _check_sentence(text):
    """The verdict (the first sentence) follows its interval; so does the gap sentence."""
    first, *rest = re.split(r"(?<=\.) (?=[A-Z])", text)
    for sentence in rest:
        share = SHARE.findall(sentence)
        if "gap" in sentence and share:
            d, lo, hi = map(int, share[0])
            if "not established" in sentence:
                assert lo <= 0 <= hi, sentence
            else:  # "closes" or "widens" by a share whose interval is above 0.
                assert lo > 0 and ("closes" in sentence or "widens" in sentence), sentence
    text = first
    found = DIFF.findall(text)
    assert found, text
    (d, lo, hi) = map(float, found[0])
    assert lo <= d <= hi, text
    if "not established" in text:
        assert lo <= 0 <= hi, text
        assert "higher" not in text and "lower" not in text, text
    else:
        assert "higher" in text or "lower" in text, text
        assert lo > 0 or hi < 0, text
        assert ("higher" in text) == (d > 0), text


def _lesson4():
    rows = ablation.read_rows(RESULTS / "lesson4" / "results.csv")
    return rows, ablation.summarize(rows)


def test_lesson4_records_convergence_for_five_seeds_per_recipe():
    """results.csv has best_epoch, epochs and converged per run, at least 5 seeds per
    recipe, and converged agrees with decision.converged on the recorded curve."""
    rows, _ = _lesson4()
    study = json.loads((RESULTS / "lesson4" / "study.json").read_text())
    base = study["base"]
    for recipe in {r["recipe"] for r in rows}:
        assert len({r["seed"] for r in rows if r["recipe"] == recipe}) >= 5, recipe
    for r in rows:
        assert r["epochs"] == len(r["val_accuracies"]) == base["epochs"]  # patience off
        want = decision.converged(
            r["val_accuracies"],
            r["best_epoch"],
            base["epochs"],
            base["step_size"],
            study["key"]["sizes"]["sizes"][1],
        )
        assert r["converged"] == want


def test_lesson4_verdicts_agree_with_the_paired_intervals():
    """Every sentence chapter 12 prints about a recipe against the baseline; "closes" only
    where the baseline's own gap interval excludes 0."""
    rows, summary = _lesson4()
    for shift in ("stain", "scanner"):
        lines = verdicts.against_baseline(summary, shift)
        base = next(e for e in summary if (e["shift"], e["recipe"]) == (shift, "baseline"))
        gap_known = base["gap_low"] > 0 or base["gap_high"] < 0
        for line in lines[1:]:
            for sentence in line.split(". On validation: "):
                _check_sentence(sentence)
            if " closes " in line:
                assert gap_known and base["gap"] > 0, line
    head = verdicts.headline(summary, rows)
    for e in summary:
        c = e["vs_baseline"] and e["vs_baseline"]["test_accuracy"]
        if c and e["shift"] == "stain" and e["recipe"] in head.split(",")[1].split("raised")[0]:
            assert decision.established(c) and c["diff"] > 0, e["recipe"]


def test_lesson2_ranking_sentences_agree_with_the_paired_intervals():
    rows = folder.read_results(RESULTS / "lesson2" / "results.csv")
    names = [s["params"] for s in grid.summarize(rows)]
    for sentence in verdicts.ranking(rows, names):
        _check_sentence(sentence)


def test_lesson5_analyses_the_model_lesson3_carried():
    """Lesson 5's metrics.json names the run it analysed: the one lesson 3 carried; its
    calibration sentence calls a change lower or higher only outside its interval."""
    m3 = json.loads((RESULTS / "lesson3" / "metrics.json").read_text())
    m5 = json.loads((RESULTS / "lesson5" / "metrics.json").read_text())
    assert m5["checkpoint"] == m3["carried_checkpoint"]
    assert m5["run"] == str(Path(m3["carried_checkpoint"]).parent)
    lo, hi = m5["ece_change_ci95"]
    text = verdicts.calibration(m5)
    assert ("not established" in text) == (lo <= 0 <= hi)


def test_lesson3_report_describes_one_model_above_the_rejected_section():
    """report.md's settings table is the carried model's; the other has its own section."""
    m = json.loads((RESULTS / "lesson3" / "metrics.json").read_text())
    text = (RESULTS / "lesson3" / "report.md").read_text()
    carried, rejected = m["carried"], {"tuned": "baseline", "baseline": "tuned"}[m["carried"]]
    head, _, tail = text.partition(f"## The rejected model: {rejected}")
    assert tail, "no labelled section for the rejected model"
    assert f"Carried: the **{carried}** model" in head
