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
        {
            "params": {"lr": lr},
            "epochs": 3,
            "seed": s,
            "val_acc": acc,
            "val_loss": 0.3,
            "best_epoch": 2,
            "seconds": 1.0,
        }
        for lr, s, acc in [(0.001, 0, 0.9), (0.001, 1, 0.8), (0.01, 0, 0.5)]
    ]
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


def test_trial_label_follows_the_config_field_order():
    """One name per trial: TrainConfig's field order, whatever order the dict has."""
    assert tables.trial_label({"batch_size": 64, "optimizer": "adam", "lr": 0.001}) == (
        "optimizer=adam, lr=0.001, batch_size=64"
    )


def test_format_ablation_shows_paired_differences_and_gap_closed_only_when_known():
    """The table has one row per (shift, recipe) with seeds (converged), the paired test
    difference and McNemar p for recipes, and a gap-closed cell only where given."""
    entry = {
        "shift": "stain",
        "n": 5,
        "converged": 4,
        "val": 0.9,
        "val_low": 0.88,
        "val_high": 0.92,
        "test": 0.8,
        "test_low": 0.78,
        "test_high": 0.82,
        "gap": 0.1,
        "gap_low": 0.08,
        "gap_high": 0.12,
        "test_auc": 0.95,
    }
    paired = {"n": 5, "diff": 0.02, "low": 0.01, "high": 0.03, "mcnemar_p": 0.004}
    summary = [
        {**entry, "recipe": "baseline", "vs_baseline": None, "gap_closed": None},
        {
            **entry,
            "recipe": "flips",
            "vs_baseline": {"test_accuracy": paired},
            "gap_closed": {"share": 0.2, "low": 0.1, "high": 0.3},
        },
    ]
    lines = tables.format_ablation(summary).splitlines()
    assert len(lines) == 4 and "seeds (converged)" in lines[0]
    assert lines[2].startswith("| stain | baseline | 5 (4) | 0.900 [0.880, 0.920] |")
    assert "+0.020 [+0.010, +0.030] | 0.004 |" in lines[3]
    assert lines[3].endswith("| 20% [10%, 30%] |") and lines[2].endswith("|  |")


def test_format_rejected_names_the_model_and_its_differences(tmp_path):
    """The rejected model's section: its name, checkpoint, the settings that differ from
    the carried model's, its metrics and its figures linked relative to the run."""
    from pathmnist.config import TrainConfig

    ev = make_evaluation(0)
    text = tables.format_rejected(
        "tuned",
        "runs/x/best.pt",
        TrainConfig(lr=0.01),
        TrainConfig(),
        None,
        {"val": ev},
        {"Loss": tmp_path / "figures" / "rejected_loss_curve.png"},
        tmp_path,
    )
    assert text.startswith("## The rejected model: tuned")
    assert "| lr | `0.01` | `0.001` |" in text and "`runs/x/best.pt`" in text
    assert f"| val | {ev.accuracy:.4f} |" in text
    assert "](figures/rejected_loss_curve.png)" in text
