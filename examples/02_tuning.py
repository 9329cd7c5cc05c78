"""Lesson 2: the seed project's grid search on a stratified 20% subset.

Adam lr {1e-3, 3e-3} and SGD lr {1e-2, 3e-2}, each with batch size {64, 128}: 8 trials
of 3 epochs on a stratified 20% of the training split, validated on the full validation
split. Writes results.csv (one row per finished trial; rerun with --resume to skip
those), a results table in report.md, a bar chart of the trials and best_config.json,
which lesson 3 reads.

    python examples/02_tuning.py --dataset synthetic       # offline, about 5 min on 2 CPU cores
"""

# %% Imports
import dataclasses
from pathlib import Path

from pathmnist import cli, plots, report, tuning
from pathmnist.io import write_json


# %% The search
def main(argv=None):
    args = cli.parser(__doc__.splitlines()[0]).parse_args(argv)
    out = args.out or Path("runs/02_tuning")
    args.subset = 0.2 if args.subset is None else args.subset  # the seed's 20% subset
    epochs = args.epochs or 3  # the seed's 3 epochs per trial
    args.epochs = None  # --epochs sets the trial length here, not the final training's
    base = cli.config_from_args(args)
    splits = cli.load_data(args, splits=("train", "val"))
    print(
        f"tuning on {len(splits['train']):,} training images ({args.subset:.0%}), "
        f"{len(splits['val']):,} val; writing to {out}"
    )
    results = tuning.grid_search(
        tuning.DEFAULT_SPACE,
        splits["train"],
        splits["val"],
        out,
        epochs=epochs,
        base=base,
        resume=args.resume,
        quiet=args.quiet,
    )

    # %% The best configuration, the table and the chart
    best = dataclasses.replace(base, **results[0]["params"])
    write_json(out / "best_config.json", best.to_dict())
    chart = plots.trials_bar(results, out / "figures" / "trials.png")
    table = tuning.format_results(results)
    report.write_report(
        out,
        "Lesson 2: grid search",
        config=base,
        figures={"Trials": chart},
        sections=[
            f"## Results (best first, {epochs} epochs each)\n\n{table}",
            f"Best: `{results[0]['params']}` -> best_config.json",
        ],
    )
    print(table)
    print(f"best: {results[0]['params']} (val acc {results[0]['best_val_acc']:.4f})")


if __name__ == "__main__":
    cli.run(main)
