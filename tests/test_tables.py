"""report.tables: the one Markdown-table helper and the format_* texts, golden and
against the numbers they format."""

from hypothesis import given
from hypothesis import strategies as st
from test_run_report import make_evaluation

from pathmnist.evaluation import metrics
from pathmnist.report import tables
from pathmnist.studies import grid


def test_markdown_table_golden():
    """Header, alignment rule (first column left, the rest right by default) and rows."""
    assert tables.markdown_table(["k", "v"], [("a", 1), ("b", 2.5)]) == (
        "| k | v |\n|---|---:|\n| a | 1 |\n| b | 2.5 |"
    )
    assert tables.markdown_table(["x", "y"], [], align=["r", "l"]) == "| x | y |\n|---:|---|"


def test_format_report_markdown():
    """format_report gives a Markdown table: header, alignment row, one row per class and
    the bold macro row."""
    rep = metrics.classification_report([0, 1, 1], [0, 1, 0], ["ADI", "BACK"])
    lines = tables.format_report(rep, digits=2).strip().splitlines()
    assert lines[0] == "| class | precision | recall | F1 | support |"
    assert lines[1] == "|---|---:|---:|---:|---:|"
    assert lines[2] == "| ADI | 0.50 | 1.00 | 0.67 | 1 |"
    assert lines[3] == "| BACK | 1.00 | 0.50 | 0.67 | 2 |"
    assert lines[4] == f"| **{metrics.MACRO}** | 0.75 | 0.75 | 0.67 | 3 |"


def test_format_results_lists_every_trial():
    """The Markdown table of grid.summarize has a header, a rule and one line per trial,
    best first, with the interval over seeds (n/a for one seed)."""
    rows = [
        {"params": {"lr": lr}, "epochs": 3, "seed": s, "val_acc": acc, "val_loss": 0.3,
         "best_epoch": 2, "seconds": 1.0}
        for lr, s, acc in [(0.001, 0, 0.9), (0.001, 1, 0.8), (0.01, 0, 0.5)]
    ]  # fmt: skip
    table = tables.format_results(grid.summarize(rows)).splitlines()
    assert table[0] == (
        "| rank | lr | epochs | seeds | val acc (mean) | 95% interval | val loss | s |"
    )
    assert len(table) == 4
    assert table[2].startswith("| 1 | 0.001 | 3 | 2 | 0.8500 | [")
    assert table[3] == "| 2 | 0.01 | 3 | 1 | 0.5000 | n/a (1 seed) | 0.3000 | 1 |"


@given(st.integers(0, 1000))
def test_printed_table_matches_the_evaluations(seed):
    """format_table prints each split's accuracy, AUC and loss to 4 decimals."""
    ev = make_evaluation(seed)
    line = tables.format_table({"test": ev}).splitlines()[-1].split()
    assert line[0] == "test" and line[1] == f"{ev.accuracy:.4f}"
    assert line[-2:] == [f"{ev.macro_auc:.4f}", f"{ev.loss:.4f}"]
