"""Lesson 1: the seed project's baseline, reproduced.

ResNet-18 from scratch, Adam lr 1e-3, batch 128, 10 epochs, weight decay 1e-4,
StepLR(5, 0.1), early stopping with patience 3 on the validation loss (the defaults of
`pathmnist.config.TrainConfig`). Trains on the training split, validates every epoch,
and writes its run directory (config.json, history.csv, best.pt, metrics.json, report.md,
figures/). The test split stays untouched until lesson 3.

    python examples/01_baseline.py --dataset synthetic     # offline, about 7 min on 2 CPU cores
    python examples/01_baseline.py                         # the real PathMNIST (downloads it)
    torchrun --nproc-per-node 2 examples/01_baseline.py --dataset synthetic   # 2 processes

Under torchrun the processes train one model with DistributedDataParallel (chapter 14);
only rank 0 writes the run folder and prints.
"""

# %% Imports
from pathlib import Path

from pathmnist import cli
from pathmnist.report import run_report, tables
from pathmnist.training import ddp
from pathmnist.training.fit import fit


# %% The run
def main(argv=None):
    args = cli.parser(__doc__.splitlines()[0]).parse_args(argv)
    out = cli.check_run_flags(args, args.out or Path("runs/01_baseline"), kind="01_baseline")
    config = cli.config_from_args(args)
    ddp.setup(config.device)  # Under torchrun: join the other processes (else nothing).
    with ddp.main_first():  # Rank 0 downloads or builds the data once.
        splits = cli.load_data(args, splits=("train", "val"))
    train, val = splits["train"], splits["val"]
    cli.check_training(config, train, val)  # Before the run folder exists.
    if ddp.is_main():
        print(
            f"train {len(train):,} images, val {len(val):,}, {train.num_classes} classes, "
            f"{train.image_size}x{train.image_size}; writing to {out}"
        )

    with ddp.hold(out, "01_baseline", args.resume, args.overwrite):  # To the last byte.
        history = fit(
            config,
            train,
            val,
            out,
            resume=args.resume,
            overwrite=args.overwrite,
            quiet=args.quiet,
            distributed=True,
        )
        if not ddp.is_main():  # Rank 0 writes the run folder; the others are done.
            return
        evaluations = {"val": history.predictor.evaluate(val)}

        # %% The run directory: metrics, figures, report
        run_report.write_metrics(out, evaluations)
        figures = run_report.save_figures(
            out, history, evaluations, train.class_names, images=train, split_images={"val": val}
        )
        run_report.write_report(
            out,
            "Lesson 1: baseline",
            data=cli.data_description(args),
            config=config,
            history=history,
            evaluations=evaluations,
            class_names=train.class_names,
            figures=figures,
        )
    print(tables.format_table(evaluations, history))


if __name__ == "__main__":
    cli.run(main)
