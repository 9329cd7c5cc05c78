"""Lesson 2: the seed project's grid search on a stratified 20% subset, with repeats.

Adam lr {1e-3, 3e-3} and SGD lr {1e-2, 3e-2}, each with batch size {64, 128}: 8 trials of
3 epochs on a stratified 20% of the training split, validated on the full validation
split. `--repeats K` runs each trial with K seeds and ranks by the mean, with a 95%
interval; `--strategy halving` runs successive halving instead of the full grid. Writes
search.json and results.csv (rerun with --resume to skip finished runs), a results table in
report.md, a chart of the trials and best_config.json, which lesson 3 reads.

    python examples/02_tuning.py --dataset synthetic       # offline, about 5 min on 2 CPU cores
    torchrun --nproc-per-node 2 examples/02_tuning.py --dataset synthetic   # trials shared out

Under torchrun each trial runs in one process, trial i on rank i % N; rank 0 writes the
search folder's files and the table, which equals one process's (chapter 14).
"""

# %% Imports
import dataclasses
from pathlib import Path

from pathmnist import cli
from pathmnist.config import check_seeds
from pathmnist.errors import PathMNISTError
from pathmnist.files import write_json
from pathmnist.report import comparison_plots, optuna_report, run_report, tables
from pathmnist.studies import folder, grid, halving, optuna_search
from pathmnist.training import ddp


# %% The search
def main(argv=None):
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=1, help="seeds per trial (default 1)")
    p.add_argument("--strategy", choices=[*grid.STRATEGIES, "optuna"], default="grid")
    p.add_argument("--eta", type=int, default=3, help="halving: keep the best 1/eta (default 3)")
    p.add_argument("--max-epochs", type=int, default=9, help="halving: the last round's epochs")
    o = p.add_argument_group("optuna (--strategy optuna: TPE and successive-halving pruning)")
    o.add_argument("--trials", type=int, default=8, help="trials to finish (default 8)")
    o.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    o.add_argument("--storage", help="an Optuna storage URL that many machines share, e.g. "
                   "postgresql+psycopg://user:pw@host/db (default: SQLite in --out)")  # fmt: skip
    o.add_argument("--study", help="the study's name in the storage (default pathmnist)")
    o.add_argument("--space", choices=["seed", "wide"], default="seed", help="the seed's grid "
                   "as choices, or a wide continuous space (default seed)")  # fmt: skip
    o.add_argument("--budget", type=int, help="stop starting trials after this many epochs")
    args = p.parse_args(argv)
    out = cli.check_run_flags(args, args.out or Path("runs/02_tuning"), kind="02_tuning")
    args.subset = 0.2 if args.subset is None else args.subset  # the seed's 20% subset
    epochs = 3 if args.epochs is None else args.epochs  # the seed's 3; halving's first round
    args.epochs = None  # --epochs sets the trial length here, not the final training's
    base = cli.config_from_args(args)
    check_seeds(base.seed, args.repeats)  # seed .. seed + repeats - 1, before any data.
    if args.strategy == "optuna" and ddp.launched():
        raise PathMNISTError(
            "--strategy optuna starts its own worker processes (--workers K, or more machines "
            "on one --storage); run it without torchrun."
        )
    ddp.setup(base.device)  # Under torchrun: join the other processes (else nothing).
    with ddp.main_first():  # Rank 0 downloads or builds the data once.
        splits = cli.load_data(args, splits=("train", "val"))
    train, val = splits["train"], splits["val"]
    cli.check_training(base, train, val)
    if ddp.is_main():
        print(
            f"tuning on {len(train):,} training images ({args.subset:.0%}), {len(val):,} val, "
            f"{args.repeats} seed(s) per trial, strategy {args.strategy}; writing to {out}"
        )
    common = dict(
        base=base,
        repeats=args.repeats,
        resume=args.resume,
        overwrite=args.overwrite,
        quiet=args.quiet,
    )
    with ddp.hold(out, "02_tuning", args.resume, args.overwrite):  # To the last byte.
        if args.strategy == "optuna":  # Trials run from --epochs to --max-epochs, pruned by eta.
            rows, study = optuna_search.optuna_search(
                train, val, out, args.trials, base, args.space, epochs, args.max_epochs, args.eta,
                args.workers, args.storage, args.study, args.budget, args.resume, args.overwrite,
                args.quiet,
            )  # fmt: skip
            best = optuna_report.write_outputs(
                out, study, rows, base, args.max_epochs, len(train), "Lesson 2: tuning with Optuna"
            )
            print(tables.format_results(best["summary"]))
            print(f"trials: {best['states']}; compute: {best['compute']:,} image-epochs")
            mean = f"mean val acc {best['val_acc']:.4f}, {best['n']} trial(s)"
            print(f"best: {best['params']} ({mean})")
            return
        if args.strategy == "grid":
            summary = grid.grid_search(grid.DEFAULT_SPACE, train, val, out, epochs, **common)
            rounds = None
        else:
            summary, rounds = halving.halving_search(
                grid.DEFAULT_SPACE,
                train,
                val,
                out,
                eta=args.eta,
                min_epochs=epochs,
                max_epochs=args.max_epochs,
                **common,
            )
        if not ddp.is_main():  # Rank 0 merged the rows; it writes the rest.
            return
        if not summary:
            raise PathMNISTError("the search finished no trial; check --epochs and --repeats.")

        # %% The best configuration, the table and the chart
        best = summary[0]
        write_json(out / "best_config.json", dataclasses.replace(base, **best["params"]).to_dict())
        chart = comparison_plots.trials_bar(summary, out / "figures" / "trials.png")
        table = tables.format_results(summary)
        rows = folder.read_results(out / "results.csv")
        spent = grid.compute(rows, len(train))
        sections = [
            f"## Results (best first)\n\n{table}",
            f"Compute: {spent:,} image-epochs over {len(rows)} runs.",
            f"Best: `{best['params']}` -> best_config.json",
        ]
        if rounds is not None:
            sections.insert(0, tables.format_rounds(rounds))
        run_report.write_report(
            out,
            "Lesson 2: tuning",
            data=cli.data_description(args),
            config=base,
            figures={"Trials": chart},
            sections=sections,
        )
    print(table)
    print(f"compute: {spent:,} image-epochs")
    print(f"best: {best['params']} (mean val acc {best['val_acc']:.4f} over {best['n']} seed(s))")


if __name__ == "__main__":
    cli.run(main)
