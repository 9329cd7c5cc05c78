"""Lesson 5's analysis of a trained run: its logits, its calibration before and after
temperature scaling, and which test images to show with Grad-CAM.

`open_run(run_dir)` checks a run folder (best.pt and config.json from `training.fit`) and
returns its model and settings; `logits(...)` collects a split's float32 logits in eval
mode; `calibrate(...)` fits the temperature on validation logits (never on test) and
reports the expected calibration error on test before and after; `pick_examples(...)`
chooses, per class, one correctly and one wrongly classified test image.

Tested in tests/test_inside.py on a tiny trained run.
"""

from pathlib import Path

import numpy as np
import torch

from pathmnist import calibration, checkpoints, training
from pathmnist.device import resolve_device, resolve_precision
from pathmnist.errors import PathMNISTError
from pathmnist.loader import BatchLoader


def open_run(run_dir) -> checkpoints.Checkpoint:
    """The run's best model (CPU, eval mode), config, eval transform and class names."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PathMNISTError(
            f"there is no run folder at {run_dir}; train one first (examples/03_final_"
            "evaluation.py writes runs/03_final_evaluation) or pass --run DIR."
        )
    return checkpoints.load_checkpoint(run_dir / "best.pt")


def check_data(ckpt: checkpoints.Checkpoint, imageset) -> None:
    """Refuse data whose classes differ from the ones the model was trained on."""
    if tuple(imageset.class_names) != tuple(ckpt.class_names):
        raise PathMNISTError(
            f"the run was trained on {len(ckpt.class_names)} classes {ckpt.class_names[:3]}..., "
            f"but this data has {imageset.num_classes}; pass the data the run used."
        )


def logits(model, imageset, eval_transform, config, batch_size=512) -> tuple:
    """(logits (N, C) float32, labels (N,)) of a split, in eval mode, as numpy arrays."""
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    loader = BatchLoader(
        imageset, batch_size, shuffle=False, transform=eval_transform, device=device
    )
    model = model.to(device).eval()
    out, ys = [], []
    with torch.no_grad():
        for x, y in loader:
            out.append(training.forward(model, x, precision))
            ys.append(y)
    return torch.cat(out).cpu().numpy(), torch.cat(ys).cpu().numpy()


def calibrate(val_logits, val_labels, test_logits, test_labels, n_bins=15) -> dict:
    """Temperature fitted on validation; test ECE and reliability before and after."""
    t = calibration.fit_temperature(val_logits, val_labels)
    before = torch.as_tensor(test_logits, dtype=torch.float64).softmax(1).numpy()
    after = calibration.apply_temperature(torch.as_tensor(test_logits, dtype=torch.float64), t)
    after = torch.as_tensor(after).softmax(1).numpy()
    rel_before = calibration.reliability(test_labels, before, n_bins)
    rel_after = calibration.reliability(test_labels, after, n_bins)
    return {
        "temperature": float(t),
        "ece": float(rel_before.ece),
        "ece_after_temperature": float(rel_after.ece),
        "reliability_before": rel_before,
        "reliability_after": rel_after,
        "accuracy": float((before.argmax(1) == test_labels).mean()),
        "accuracy_after_temperature": float((after.argmax(1) == test_labels).mean()),
    }


def pick_examples(labels, preds, num_classes, seed=0) -> np.ndarray:
    """Indices of up to one correct and one wrong prediction per class (by true label),
    drawn with numpy's default_rng(seed): correct ones first, then wrong ones."""
    rng = np.random.default_rng(seed)
    chosen = []
    for right in (True, False):
        for c in range(num_classes):
            pool = np.flatnonzero((labels == c) & ((preds == labels) == right))
            if len(pool):
                chosen.append(int(rng.choice(pool)))
    return np.asarray(chosen, dtype=np.int64)
