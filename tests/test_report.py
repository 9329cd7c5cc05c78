"""A run directory's metrics.json, figures and report.md say the same numbers as the
evaluations they are given, and are written whole; the Markdown helpers (markdown_table,
format_report, format_results) have golden layouts; the intervals and the McNemar
comparison equal statsmodels' (Wilson proportion_confint, exact mcnemar)."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.proportion import proportion_confint

from pathmnist.config import TrainConfig
from pathmnist.errors import PathMNISTError
from pathmnist.evaluation import decision, metrics
from pathmnist.report import run_report, tables
from pathmnist.studies import grid
from pathmnist.training.history import History
from pathmnist.training.loop import Evaluation

NAMES = ("a", "b", "c")


def make_evaluation(seed=0, n=30, labels=None):
    """An Evaluation whose accuracy and AUC are computed from random probabilities."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3 if labels is None else labels
    probs = rng.dirichlet(np.ones(3), len(labels))
    return Evaluation(
        0.5, metrics.accuracy(labels, probs), metrics.macro_auc(labels, probs), probs, labels
    )


def history_rows(epochs=(1, 2)):
    return [
        {"epoch": e, "train_loss": 1.0 / e, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.4,
         "val_auc": 0.6, "lr": 1e-3, "seconds": 1.0, "device": "cpu", "precision": "fp32"}
        for e in epochs
    ]  # fmt: skip


# metrics.json


def test_metrics_json_has_one_object_per_split(tmp_path):
    """metrics.json maps each split to accuracy (with its 95% Wilson interval), macro AUC
    (with a bootstrap interval around it), loss and the number of images; extras follow."""
    evs = {"val": make_evaluation(0), "test": make_evaluation(1)}
    extra = {"decision": {"kept": "baseline"}}
    saved = json.loads(run_report.write_metrics(tmp_path, evs, extra).read_text())
    assert list(saved) == ["val", "test", "decision"] and saved["decision"] == extra["decision"]
    test = saved["test"]
    assert (test["accuracy"], test["macro_auc"], test["loss"], test["n"]) == (
        evs["test"].accuracy, evs["test"].macro_auc, 0.5, 30,
    )  # fmt: skip
    k = round(evs["test"].accuracy * 30)
    assert test["accuracy_ci95"] == pytest.approx(
        proportion_confint(k, 30, alpha=0.05, method="wilson"), rel=1e-9
    )
    low, high = test["macro_auc_ci95"]
    assert 0.0 <= low <= high <= 1.0
    assert not list(tmp_path.glob("*.tmp"))


@settings(max_examples=25)
@given(correct=st.integers(0, 40), extra=st.integers(0, 40))
def test_accuracy_interval_is_wilsons(correct, extra):
    """For any k of n images right, the accuracy interval is statsmodels' Wilson interval."""
    n = correct + extra
    if n == 0:
        return
    labels = np.zeros(n, np.int64)
    probs = np.zeros((n, 3))
    probs[:correct, 0], probs[correct:, 1] = 1.0, 1.0
    ev = Evaluation(0.0, correct / n, math.nan, probs, labels)
    got = run_report.split_metrics(ev, auc_resamples=0)
    assert "macro_auc_ci95" not in got
    assert got["accuracy_ci95"] == pytest.approx(
        proportion_confint(correct, n, alpha=0.05, method="wilson"), rel=1e-9, abs=1e-12
    )


def test_compare_equals_statsmodels_exact_mcnemar():
    """compare's counts and p-value are statsmodels' exact McNemar test on the 2x2 table of
    right/wrong; the sentence says the difference and whether it is within the noise."""
    labels = np.arange(60) % 3
    a, b = make_evaluation(0, labels=labels), make_evaluation(1, labels=labels)
    got = decision.compare("A", a, "B", b)
    right_a, right_b = a.probs.argmax(1) == labels, b.probs.argmax(1) == labels
    table = [[np.sum(right_a & right_b), np.sum(right_a & ~right_b)],
             [np.sum(~right_a & right_b), np.sum(~right_a & ~right_b)]]  # fmt: skip
    oracle = sm_mcnemar(table, exact=True)
    assert (got["only_a_right"], got["only_b_right"]) == (table[0][1], table[1][0])
    assert got["mcnemar_p"] == pytest.approx(oracle.pvalue, rel=1e-9)
    assert got["accuracy_difference"] == pytest.approx(a.accuracy - b.accuracy)
    assert got["sentence"].startswith("A minus B: ") and "at the 5% level." in got["sentence"]


def test_compare_needs_the_same_images():
    """Two evaluations of different images cannot be compared: a PathMNISTError."""
    with pytest.raises(PathMNISTError, match="same images"):
        decision.compare("A", make_evaluation(0, n=30), "B", make_evaluation(1, n=33))


# report.md and the figures


def test_report_and_figures(tmp_path):
    """report.md holds the config, the history, the metrics, the per-class report and a
    link to every figure, and every linked figure exists."""
    history = History(history_rows(), best_epoch=2, stopped_early=False)
    evs = {"val": make_evaluation()}
    figures = run_report.save_figures(tmp_path, history, evs, NAMES)
    text = run_report.write_report(
        tmp_path,
        "Run",
        config=TrainConfig(),
        history=history,
        evaluations=evs,
        class_names=NAMES,
        figures=figures,
        sections=["## Notes\n\nA section of the example's own."],
    ).read_text()
    assert text.startswith("# Run\n")
    assert "| optimizer | `adam` |" in text and "Best epoch 2" in text
    assert f"{evs['val'].accuracy:.4f}" in text and "macro avg" in text
    assert "## Notes\n\nA section of the example's own." in text
    for path in figures.values():
        assert path.exists() and f"figures/{path.name}" in text


@given(st.integers(0, 1000))
def test_printed_table_matches_the_evaluations(seed):
    """format_table prints each split's accuracy, AUC and loss to 4 decimals."""
    ev = make_evaluation(seed)
    line = tables.format_table({"test": ev}).splitlines()[-1].split()
    assert line[0] == "test" and line[1] == f"{ev.accuracy:.4f}"
    assert line[-2:] == [f"{ev.macro_auc:.4f}", f"{ev.loss:.4f}"]


# Markdown helpers (moved here from metrics.format_report and tuning.format_results).


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


def test_carried_keeps_the_baseline_unless_tuned_is_better_beyond_the_noise():
    """The tuned model is carried only when it is ahead on validation with McNemar p below
    alpha; ahead within the noise, or behind, carries the baseline; no baseline, tuned."""
    assert decision.carried(None) == "tuned"
    assert decision.carried({"accuracy_difference": 0.02, "mcnemar_p": 0.01}) == "tuned"
    assert decision.carried({"accuracy_difference": 0.02, "mcnemar_p": 0.2}) == "baseline"
    assert decision.carried({"accuracy_difference": -0.02, "mcnemar_p": 0.01}) == "baseline"
    assert decision.carried({"accuracy_difference": 0.02, "mcnemar_p": 0.04}, alpha=0.01) == (
        "baseline"
    )
