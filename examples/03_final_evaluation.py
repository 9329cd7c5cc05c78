"""Lesson 3: train the tuned configuration on the full training split, then test.

Reads best_config.json (from --config, default the tuning run's), trains for its 10
epochs on the whole training split, and evaluates on the validation and the held-out
test split: accuracy, macro AUC, the per-class report, the confusion matrix, ROC curves,
and the gap between validation and test (PathMNIST's test set comes from another
centre, with another stain).

    python examples/03_final_evaluation.py --dataset synthetic   # about 7 min on 2 CPU cores
"""

# %% Imports
from pathlib import Path

from pathmnist import cli, report, training
from pathmnist.config import TrainConfig


# %% Training the final model
def main(argv=None):
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument(
        "--config",
        type=Path,
        default=Path("runs/02_tuning/best_config.json"),
        help="best_config.json written by examples/02_tuning.py",
    )
    args = p.parse_args(argv)
    out = cli.check_run_flags(args, args.out or Path("runs/03_final_evaluation"))
    config = cli.config_from_args(args, base=TrainConfig.from_json(args.config))
    splits = cli.load_data(args)
    print(
        f"final training with {config.optimizer} lr {config.lr} batch {config.batch_size} "
        f"for {config.epochs} epochs on {len(splits['train']):,} images; writing to {out}"
    )
    history = training.fit(
        config,
        splits["train"],
        splits["val"],
        out,
        resume=args.resume,
        overwrite=args.overwrite,
        quiet=args.quiet,
    )

    # %% Validation versus test
    evaluations = {
        s: training.evaluate_imageset(history.model, splits[s], history.eval_transform, config)
        for s in ("val", "test")
    }
    gap = evaluations["val"].accuracy - evaluations["test"].accuracy
    report.write_metrics(out, evaluations)
    figures = report.save_figures(out, history, evaluations, splits["train"].class_names)
    report.write_report(
        out,
        "Lesson 3: final evaluation",
        config=config,
        history=history,
        evaluations=evaluations,
        class_names=splits["train"].class_names,
        figures=figures,
        sections=[
            f"## Validation versus test\n\nThe test accuracy is {gap:.4f} below "
            "validation: the test split comes from another centre with another stain."
        ],
    )
    print(report.format_table(evaluations, history))
    print(f"val - test accuracy gap: {gap:.4f}")


if __name__ == "__main__":
    cli.run(main)
