"""A run directory's metrics.json, figures and report.md say the same numbers as the
evaluations they are given, and are written whole; the Markdown helpers (markdown_table,
format_report, format_results) have golden layouts; the intervals and the McNemar
comparison equal statsmodels' (Wilson proportion_confint, exact mcnemar)."""

import json
import math
import re
import shlex
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.proportion import proportion_confint

from pathmnist.config import TrainConfig
from pathmnist.errors import PathMNISTError
from pathmnist.evaluation import metrics
from pathmnist.report import model_plots, run_report
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


PNG = b"\x89PNG\r\n\x1a\n"


def test_misclassified_grid_shows_the_errors(tmp_path):
    """save_figures draws misclassified_<split>.png (a valid PNG) when the split's images are
    given, and the report links it; a split without an error still gets a figure; bad
    labels are one sentence."""
    evs = {"val": make_evaluation()}
    images = np.random.default_rng(0).integers(0, 256, (30, 8, 8, 3), dtype=np.uint8)
    figures = run_report.save_figures(tmp_path, None, evs, NAMES, split_images={"val": images})
    path = figures["Misclassified images (val)"]
    assert path == tmp_path / "figures" / "misclassified_val.png"
    assert path.read_bytes().startswith(PNG)
    text = run_report.render_report("Run", evaluations=evs, class_names=NAMES, figures=figures)
    assert "figures/misclassified_val.png" in text
    labels = evs["val"].labels
    perfect = model_plots.misclassified_grid(images, labels, labels, NAMES, tmp_path / "p.png")
    assert perfect.read_bytes().startswith(PNG)
    with pytest.raises(PathMNISTError, match="misclassified_grid got labels"):
        model_plots.misclassified_grid(images, labels[:3], labels, NAMES, tmp_path / "x.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures", "p.png"]


def test_header_names_the_command_the_data_and_the_time():
    """report.md opens with the command, the data and the time it was written: given, or
    by default this process's own command line and the current UTC time."""
    text = run_report.render_report(
        "Run", command="python examples/01_baseline.py --epochs 3",
        data="synthetic size 64", written="2026-01-02 03:04 UTC",
    )  # fmt: skip
    assert text.startswith(
        "# Run\n\n- Command: `python examples/01_baseline.py --epochs 3`\n"
        "- Data: `synthetic size 64`\n- Written: 2026-01-02 03:04 UTC\n"
    )
    default = run_report.render_report("Run")
    assert f"- Command: `{shlex.join(['python', *sys.argv])}`" in default
    assert "- Data: not recorded by this run" in default
    assert re.search(r"- Written: \d{4}-\d\d-\d\d \d\d:\d\d UTC", default)


@settings(deadline=None, max_examples=25)
@given(epochs=st.integers(1, 12), data=st.data())
def test_warning_exactly_when_the_best_epoch_is_the_last(epochs, data):
    """The report warns "the best epoch is the last: the run may not have converged" if
    and only if the best epoch is the last epoch trained."""
    best = data.draw(st.integers(0, epochs))
    history = History(history_rows(range(1, epochs + 1)), best_epoch=best, stopped_early=False)
    text = run_report.render_report("Run", history=history)
    assert ("the best epoch is the last: the run may not have converged" in text) == (
        best == epochs
    )


def test_recall_per_class_carries_wilson_intervals():
    """Each class's recall in report.md comes with statsmodels' Wilson interval and its
    number of images; a class without images says n/a."""
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 0])
    preds = np.array([0, 0, 0, 1, 1, 0, 1, 0])
    table = run_report.recall_table(labels, preds, NAMES)
    low, high = proportion_confint(4, 5, alpha=0.05, method="wilson")
    assert f"| a | 0.800 | [{low:.3f}, {high:.3f}] | 5 |" in table
    low, high = proportion_confint(2, 3, alpha=0.05, method="wilson")
    assert f"| b | 0.667 | [{low:.3f}, {high:.3f}] | 3 |" in table
    assert "| c | n/a | n/a | 0 |" in table
    evs = {"val": make_evaluation()}
    text = run_report.render_report("Run", evaluations=evs, class_names=NAMES)
    assert "## Recall per class with 95% intervals (val)" in text


# Markdown helpers (moved here from metrics.format_report and tuning.format_results).
