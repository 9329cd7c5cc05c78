"""Every figure function writes a valid PNG atomically (no temporary file left behind),
`roc_points` equals sklearn.metrics.roc_curve, and mismatched inputs are named errors."""

import base64

import matplotlib.image as mpimg
import numpy as np
import pytest
from hypothesis import example, given
from sklearn.metrics import roc_curve
from strategies import binary_auc_inputs

from pathmnist.data.dataset import CLASS_NAMES, ImageSet
from pathmnist.errors import PathMNISTError
from pathmnist.report import comparison_plots, plots
from pathmnist.studies import grid


def rows(n=6, step_at=5):
    """A plausible history: losses fall, accuracies rise, lr / 10 after epoch `step_at`."""
    return [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "train_acc": 1 - 0.5 / e,
            "val_loss": 1.2 / e + 0.02 * e,
            "val_acc": 0.9 - 0.4 / e,
            "val_auc": 0.95,
            "lr": 1e-3 if e <= step_at else 1e-4,
            "seconds": 1.0,
        }
        for e in range(1, n + 1)
    ]


def check_png(path, tmp_path):
    """The file decodes as an RGB(A) image of a sensible size; no temp file is left."""
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.fixture
def evaluation():
    """9-class labels with every class present, and noisy but informative probabilities."""
    rng = np.random.default_rng(0)
    labels = np.arange(90) % 9
    logits = rng.normal(size=(90, 9)) + 2.0 * np.eye(9)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    cm = np.zeros((9, 9), np.int64)
    np.add.at(cm, (labels, probs.argmax(1)), 1)
    return labels, probs, cm


def test_learning_curves_are_pngs(tmp_path):
    """loss_curve and accuracy_curve write PNGs (with a best epoch and an LR step to mark)."""
    assert plots.loss_curve(rows(), tmp_path / "loss_curve.png") == tmp_path / "loss_curve.png"
    check_png(tmp_path / "loss_curve.png", tmp_path)
    plots.accuracy_curve(rows(), tmp_path / "figs" / "accuracy_curve.png")  # Makes the folder.
    check_png(tmp_path / "figs" / "accuracy_curve.png", tmp_path)


def test_single_epoch_history_plots(tmp_path):
    """One epoch is enough for a curve (a single point, no LR step)."""
    check_png(plots.loss_curve(rows(1), tmp_path / "l.png"), tmp_path)


def test_evaluation_figures_are_pngs(tmp_path, evaluation):
    """Confusion matrix, ROC curves and recall bars with PathMNIST's long class names."""
    labels, probs, cm = evaluation
    check_png(plots.confusion_matrix_plot(cm, CLASS_NAMES, tmp_path / "cm.png"), tmp_path)
    check_png(plots.roc_curves(labels, probs, CLASS_NAMES, tmp_path / "roc.png"), tmp_path)
    check_png(plots.recall_bars(cm, CLASS_NAMES, tmp_path / "recall.png"), tmp_path)


def test_roc_curves_with_an_absent_class(tmp_path, evaluation):
    """A class with no samples gets no curve (its AUC is undefined) instead of an error."""
    labels, probs, _ = evaluation
    keep = labels != 4
    check_png(
        plots.roc_curves(labels[keep], probs[keep], CLASS_NAMES, tmp_path / "r.png"), tmp_path
    )


def test_montage_is_a_png(tmp_path):
    """A montage of 3 per class, one class having a single image (blank cells)."""
    labels = np.r_[np.repeat(np.arange(8), 3), 8]
    images = np.random.default_rng(0).integers(0, 256, (len(labels), 16, 16, 3), np.uint8)
    imageset = ImageSet(images, labels, CLASS_NAMES)
    check_png(plots.montage(imageset, tmp_path / "montage.png", per_class=3), tmp_path)


def test_trials_bar_is_a_png(tmp_path):
    """The tuning chart takes grid.summarize's entries: several seeds (an error bar) and
    one seed (none), two budgets."""
    rows = [
        {"params": {"optimizer": "adam", "lr": lr, "batch_size": 64}, "epochs": epochs,
         "seed": seed, "val_acc": acc, "val_loss": 0.3, "best_epoch": 2, "seconds": 1.0}
        for lr, epochs, seed, acc in [(1e-3, 3, 0, 0.9), (1e-3, 3, 1, 0.8), (3e-3, 3, 0, 0.85),
                                      (1e-2, 1, 0, 0.5)]
    ]  # fmt: skip
    summary = grid.summarize(rows)
    assert [s["n"] for s in summary] == [2, 1, 1]
    check_png(comparison_plots.trials_bar(summary, tmp_path / "trials.png"), tmp_path)


@given(binary_auc_inputs())
@example((np.array([0, 1, 1, 0]), np.array([0.5, 0.5, 0.5, 0.5])))  # One tie group.
@example((np.array([0, 0, 1, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4, 0.5])))  # Separable.
def test_roc_points_equal_sklearn(inputs):
    """roc_points returns sklearn.metrics.roc_curve's fpr, tpr and thresholds, with and
    without drop_intermediate, ties included."""
    labels, scores = inputs
    for drop in (True, False):
        ours = plots.roc_points(labels, scores, drop_intermediate=drop)
        ref = roc_curve(labels, scores, drop_intermediate=drop)
        for a, b in zip(ours, ref, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda p: plots.confusion_matrix_plot(np.eye(3), CLASS_NAMES, p), "9 class names"),
        (lambda p: plots.recall_bars(np.ones(9), CLASS_NAMES, p), "shape"),
        (lambda p: plots.roc_curves(np.zeros(5), np.ones((4, 9)) / 9, CLASS_NAMES, p), "5 labels"),
        (lambda p: plots.roc_curves(np.zeros(4), np.ones((4, 3)) / 3, CLASS_NAMES, p), "(4, 9)"),
        (lambda p: plots.roc_points([0, 1, 1], [0.1, 0.2]), "3 labels and 2 scores"),
        (lambda p: plots.roc_points([1, 1], [0.1, 0.2]), "both positive and negative"),
        (lambda p: plots.loss_curve([], p), "no epochs"),
        (lambda p: comparison_plots.trials_bar([], p), "no trials"),
        (
            lambda p: plots.montage(ImageSet(np.zeros((1, 8, 8, 3), np.uint8), [0], ("a",)), p, 0),
            "per_class",
        ),
    ],
)
def test_bad_inputs_are_named(tmp_path, call, words):
    """Mismatched lengths or shapes raise PathMNISTError naming them, and write nothing."""
    with pytest.raises(PathMNISTError) as info:
        call(tmp_path / "x.png")
    assert words in str(info.value)
    assert not list(tmp_path.iterdir())


def test_html_image_inlines_a_png(tmp_path):
    """html_image gives one <img> whose data URI decodes to a PNG, with the alt text
    escaped for HTML; given a PNG's path, it inlines that file's bytes."""
    fig, ax = plots.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    tag = plots.html_image(fig, 'a "line" & more')
    assert tag.startswith('<img alt="a &quot;line&quot; &amp; more" src="data:image/png;base64,')
    data = tag.split("base64,", 1)[1].removesuffix('">')
    assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")
    path = tmp_path / "line.png"
    fig.savefig(path, format="png")
    inlined = base64.b64encode(path.read_bytes()).decode()
    assert plots.html_image(path, "x") == f'<img alt="x" src="data:image/png;base64,{inlined}">'
