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
from statsmodels.stats.proportion import proportion_confint

from pathmnist.config import TrainConfig
from pathmnist.evaluation import metrics
from pathmnist.report import run_report
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


# Markdown helpers (moved here from metrics.format_report and tuning.format_results).
