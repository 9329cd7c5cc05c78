"""Tests for pathmnist.report.model_plots: each figure is a valid PNG (PIL opens and decodes it),
written atomically (no temporary file left), and bad inputs raise PathMNISTError."""

import numpy as np
import pytest
import torch
from PIL import Image

from pathmnist.data.dataset import CLASS_NAMES
from pathmnist.errors import PathMNISTError
from pathmnist.evaluation.calibration import apply_temperature, fit_temperature, reliability
from pathmnist.report.model_plots import gradcam_grid, reliability_diagram


def check_png(path, tmp_path):
    """PIL reads a PNG of a sensible size; the folder holds no *.tmp file."""
    with Image.open(path) as img:
        assert img.format == "PNG"
        img.load()  # Decodes every pixel: a truncated file fails here.
        assert img.width > 100 and img.height > 100
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.fixture
def calibration_pair():
    """Reliability of overconfident softmax outputs before and after temperature scaling."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 9, 300)
    logits = 4 * (rng.normal(size=(300, 9)) + 1.2 * np.eye(9)[labels])
    t = fit_temperature(logits, labels)

    def probs(z):
        return torch.softmax(torch.as_tensor(z), dim=1).numpy()

    after = reliability(labels, probs(apply_temperature(logits, t)))
    return reliability(labels, probs(logits)), after, t


def test_reliability_diagram_is_a_png(tmp_path, calibration_pair):
    """Before and after panels, with and without the temperature in the title; the
    returned path is the one asked for (folders are created)."""
    before, after, t = calibration_pair
    path = tmp_path / "figures" / "reliability.png"
    assert reliability_diagram(before, after, path, temperature=t) == path
    check_png(path, tmp_path)
    check_png(reliability_diagram(before, before, tmp_path / "same.png"), tmp_path)


def samples(n=5, size=16, float_images=False):
    """Images, maps in [0, 1], labels and predictions with 3 right and n - 3 wrong."""
    g = torch.Generator().manual_seed(0)
    if float_images:
        images = torch.rand(n, 3, size, size, generator=g)  # (N, 3, H, W) in [0, 1]
    else:
        images = torch.randint(0, 256, (n, size, size, 3), generator=g, dtype=torch.uint8)
    maps = torch.rand(n, size, size, generator=g)
    labels = torch.arange(n) % 9
    preds = labels.clone()
    preds[3:] = (labels[3:] + 1) % 9
    return images, maps, labels, preds


@pytest.mark.parametrize("float_images", [False, True])
def test_gradcam_grid_is_a_png(tmp_path, float_images):
    """uint8 NHWC or float NCHW images, 3 correct and 2 wrong: a valid PNG."""
    path = tmp_path / "gradcam.png"
    assert gradcam_grid(*samples(float_images=float_images), CLASS_NAMES, path) == path
    check_png(path, tmp_path)


def test_gradcam_grid_with_only_correct_samples(tmp_path):
    """No wrong prediction leaves the right half blank instead of failing; numpy works."""
    images, maps, labels, _ = samples(n=2)
    args = (images.numpy(), maps.numpy(), labels.numpy(), labels.numpy())
    check_png(gradcam_grid(*args, CLASS_NAMES, tmp_path / "g.png"), tmp_path)


def test_reliability_diagram_bad_inputs(tmp_path, calibration_pair):
    """Something else than a Reliability, or one without samples, raises; no file is made."""
    before, _, _ = calibration_pair
    empty = before._replace(count=np.zeros_like(before.count))
    for bad in ((0.1, before), (before, empty)):
        with pytest.raises(PathMNISTError, match=r"calibration\.reliability"):
            reliability_diagram(*bad, tmp_path / "r.png")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"images": torch.zeros(2, 16, 16, 3)}, "uint8"),
        ({"images": torch.zeros(5, 16, 16)}, "uint8"),
        ({"maps": torch.zeros(5, 8, 8)}, "one map"),
        ({"labels": torch.tensor([0, 1, 2])}, "labels"),
        ({"preds": torch.tensor([0, 1, 2, 3, 9])}, r"preds .* in \[0, 9\)"),
        ({"labels": torch.zeros(5)}, "labels"),
    ],
)
def test_gradcam_grid_bad_inputs(tmp_path, change, match):
    """Wrong layouts or dtypes, maps of another size, and label vectors of the wrong length,
    dtype or range raise PathMNISTError; no file is made."""
    images, maps, labels, preds = samples()
    args = {"images": images, "maps": maps, "labels": labels, "preds": preds, **change}
    with pytest.raises(PathMNISTError, match=match):
        gradcam_grid(**args, class_names=CLASS_NAMES, path=tmp_path / "g.png")
    assert not list(tmp_path.iterdir())
