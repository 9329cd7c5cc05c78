"""A run directory's metrics.json, figures and report.md say the same numbers as the
evaluations they are given, and are written whole."""

import json

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from pathmnist import metrics, report
from pathmnist.checkpoints import History
from pathmnist.training import Evaluation, TrainConfig

NAMES = ("a", "b", "c")


def make_evaluation(seed=0, n=30):
    """An Evaluation whose accuracy and AUC are computed from random probabilities."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    probs = rng.dirichlet(np.ones(3), n)
    return Evaluation(
        0.5, metrics.accuracy(labels, probs), metrics.macro_auc(labels, probs), probs, labels
    )


def test_metrics_json_has_one_object_per_split(tmp_path):
    """metrics.json maps each split to accuracy, macro_auc and loss as plain floats."""
    evs = {"val": make_evaluation(0), "test": make_evaluation(1)}
    saved = json.loads(report.write_metrics(tmp_path, evs).read_text())
    assert list(saved) == ["val", "test"]
    assert saved["test"] == {
        "accuracy": evs["test"].accuracy,
        "macro_auc": evs["test"].macro_auc,
        "loss": 0.5,
    }


def test_report_and_figures(tmp_path):
    """report.md holds the config, the history, the metrics, the per-class report and a
    link to every figure, and every linked figure exists."""
    rows = [
        {
            "epoch": e,
            "train_loss": 1.0 / e,
            "train_acc": 0.5,
            "val_loss": 1.0,
            "val_acc": 0.4,
            "val_auc": 0.6,
            "lr": 1e-3,
            "seconds": 1.0,
        }
        for e in (1, 2)
    ]
    history = History(rows, best_epoch=2, stopped_early=False)
    evs = {"val": make_evaluation()}
    figures = report.save_figures(tmp_path, history, evs, NAMES)
    text = report.write_report(
        tmp_path,
        "Run",
        config=TrainConfig(),
        history=history,
        evaluations=evs,
        class_names=NAMES,
        figures=figures,
    ).read_text()
    assert text.startswith("# Run\n")
    assert "| optimizer | `adam` |" in text and "Best epoch 2" in text
    assert f"{evs['val'].accuracy:.4f}" in text and "macro avg" in text
    for path in figures.values():
        assert path.exists() and f"figures/{path.name}" in text


@given(st.integers(0, 1000))
def test_printed_table_matches_the_evaluations(seed):
    """format_table prints each split's accuracy, AUC and loss to 4 decimals."""
    ev = make_evaluation(seed)
    line = report.format_table({"test": ev}).splitlines()[-1].split()
    assert line == ["test", f"{ev.accuracy:.4f}", f"{ev.macro_auc:.4f}", f"{ev.loss:.4f}"]
