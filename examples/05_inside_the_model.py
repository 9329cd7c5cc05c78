"""Lesson 5: inside a trained model: where it looks (Grad-CAM), and how far to trust it.

Loads the model a run folder stands for (--run, default runs/03_final_evaluation: the model
lesson 3 carried, as its metrics.json records it; any other run's own best.pt), checks that
the data is the data it was trained on, fits a temperature on the validation logits (with
test-time augmentation when the run used it), measures the expected calibration error on
the test split before and after with a paired bootstrap interval of the change, and draws
Grad-CAM maps over test images of every class, correct and wrong predictions side by side.
Writes into the run folder: metrics.json entries `run` and `checkpoint` (what was
analysed), `ece`, `ece_after_temperature`, `ece_change_ci95` and `temperature`,
figures/reliability.png and figures/gradcam.png.

    python examples/05_inside_the_model.py --dataset synthetic --run runs/03_final_evaluation
"""

# %% Imports
import json
from pathlib import Path

import torch

from pathmnist import cli
from pathmnist.errors import PathMNISTError
from pathmnist.evaluation import calibration, decision, gradcam
from pathmnist.files import write_json
from pathmnist.report import model_plots
from pathmnist.training import inference, loop, rundir


# %% The run and its data
def main(argv=None):
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument(
        "--run",
        type=Path,
        default=Path("runs/03_final_evaluation"),
        help="a run folder with best.pt (default runs/03_final_evaluation)",
    )
    p.add_argument(
        "--layer",
        help="the layer Grad-CAM explains, a dotted module name (default: the last stage, "
        "layer4 of a ResNet, features.norm5 of a DenseNet)",
    )
    args = p.parse_args(argv)
    inference.open_run(args.run)  # Refuse a missing or broken run before taking its lock.
    with rundir.lock(args.run):  # No training may be writing there meanwhile.
        inspect(args)


def inspect(args):
    analysed = inference.analysed_checkpoint(args.run)  # Lesson 3's carried model.
    ckpt = inference.load_checkpoint(analysed)
    splits = cli.load_data(args, splits=("val", "test"))
    for s in splits.values():
        inference.check_data(ckpt, s)
    inference.check_trained_on(analysed, {"val": splits["val"]}, "the analysed model")
    config = ckpt.config
    if args.device is not None:
        config.device = args.device
    print(f"{analysed}: {config.arch} ({config.stem} stem), {len(ckpt.class_names)} classes")

    # %% Calibration: temperature fitted on validation, measured on test
    # The run's own predictor: its device, precision and TTA, as its final evaluation used
    # (under TTA the logits are the log of the mean softmax over the 8 views).
    predictor = loop.Predictor.for_config(ckpt.model, ckpt.eval_transform, config)

    val, test = (predictor.evaluate(splits[s]) for s in ("val", "test"))
    cal = calibration.calibrate(val.logits, val.labels, test.logits, test.labels)
    change = decision.ece_change(test.labels, test.logits, cal["temperature"])
    fig_dir = args.run / "figures"
    model_plots.reliability_diagram(
        cal["reliability_before"],
        cal["reliability_after"],
        fig_dir / "reliability.png",
        cal["temperature"],
    )
    print(
        f"temperature {cal['temperature']:.3f}: test ECE {cal['ece']:.4f} -> "
        f"{cal['ece_after_temperature']:.4f}, change {change['diff']:+.4f} "
        f"[{change['low']:+.4f}, {change['high']:+.4f}] (accuracy {cal['accuracy']:.4f}, unchanged)"
    )

    # %% Grad-CAM over one correct and one wrong test image per class
    labels, preds = test.labels, test.probs.argmax(1)
    idx = gradcam.pick_examples(labels, preds, len(ckpt.class_names))
    images = splits["test"].images[idx]  # (n, H, W, 3) uint8
    x = ckpt.eval_transform(torch.from_numpy(images.copy()))  # (n, 3, H, W) normalised
    maps = gradcam.grad_cam(
        ckpt.model.cpu().float(), x, target=torch.from_numpy(preds[idx]), layer=args.layer
    )
    model_plots.gradcam_grid(
        images, maps, labels[idx], preds[idx], ckpt.class_names, fig_dir / "gradcam.png"
    )

    # %% metrics.json keeps the earlier entries and gains the calibration
    path = args.run / "metrics.json"
    try:
        metrics = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        raise PathMNISTError(f"{path} is not valid JSON; rerun the run's example.") from None
    # Top-level keys, as design.md names them: ece, ece_after_temperature, temperature.
    metrics["run"], metrics["checkpoint"] = str(analysed.parent), str(analysed)
    for k in ("temperature", "ece", "ece_after_temperature"):
        metrics[k] = cal[k]
    metrics["ece_change_ci95"] = [change["low"], change["high"]]
    metrics["tta"] = config.tta
    write_json(path, metrics)
    print(f"wrote {fig_dir / 'reliability.png'}, {fig_dir / 'gradcam.png'} and {path}")


if __name__ == "__main__":
    cli.run(main)
