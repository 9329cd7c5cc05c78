"""Lesson 4: close the test shift the seed left open, and measure what each remedy does.

Recipes (pathmnist.studies.ablation.RECIPES): the seed's baseline; + flips and rotations; + HED
stain jitter; + Macenko stain normalisation; + HED jitter and test-time augmentation. Each
runs with --seeds seeds on two synthetic sets whose test splits differ from training in
different ways: a stain shift (what stain augmentation models) and a scanner shift (blur
and JPEG, which it does not). Writes results.csv (one row per recipe, seed and shift),
a figure, and report.md; rerun with --resume after an interruption.

    python examples/04_stain_shift.py --quick          # a few minutes on 2 CPU cores
    python examples/04_stain_shift.py                  # the lab-bench study (see the chapter)
    python examples/04_stain_shift.py --dataset pathmnist --shifts real   # the real data

On the real PathMNIST there is one shift, the one its test centre brings ("real").
Under `torchrun --nproc-per-node N` each (recipe, seed, shift) runs in one process, run i
on rank i % N; rank 0 writes results.csv (equal to one process's) and the report.
"""

# %% Imports
from pathlib import Path

from pathmnist import cli
from pathmnist.data import dataset as data
from pathmnist.data import synthetic
from pathmnist.errors import PathMNISTError
from pathmnist.report import comparison_plots, run_report, tables
from pathmnist.studies import ablation
from pathmnist.training import ddp

SHIFTS = {  # name -> the synthetic generator's test-split settings
    "stain": {"shift": synthetic.DEFAULT_SHIFT, "scanner": 0.0},
    "scanner": {"shift": 0.0, "scanner": 1.0},
}
# The synthetic sets' split sizes and the epochs: --quick at 28x28 (a fifth of the compute
# of 64x64), the recorded lab-bench study at --size (default 64).
QUICK = {"sizes": (600, 200, 200), "epochs": 3}
FULL = {"sizes": (1200, 400, 400), "epochs": 6}


# %% The data sets
def load(args, sizes, size):
    """{shift name: {split: ImageSet}} for the chosen shifts."""
    if args.shifts == ["real"]:
        if args.data_file is not None:
            return {"real": {s: data.load_split(s, data_file=args.data_file) for s in data.SPLITS}}
        return {
            "real": {s: data.load_split(s, root=args.data_root, size=size) for s in data.SPLITS}
        }
    root = args.data_root or data.default_root()
    out = {}
    for name in args.shifts:
        if name not in SHIFTS:
            raise PathMNISTError(f"unknown shift {name!r}; choose from stain, scanner (or real).")
        path = synthetic.ensure_synthetic(root, sizes=sizes, size=size, **SHIFTS[name])
        out[name] = {s: data.load_split(s, data_file=path) for s in data.SPLITS}
    return out


def main(argv=None):
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3, help="seeds per recipe (default 3)")
    p.add_argument("--quick", action="store_true", help="tiny sets at 28x28, 3 epochs")
    p.add_argument(
        "--recipes",
        default=",".join(ablation.LESSON4),
        help=f"comma-separated recipe names from {', '.join(ablation.RECIPES)} (default: "
        "lesson 4's five)",
    )
    p.add_argument("--shifts", default="stain,scanner", help="stain, scanner, or real")
    args = p.parse_args(argv)
    out = cli.check_run_flags(args, args.out or Path("runs/04_stain_shift"), "study.json")
    if args.seeds is None or isinstance(args.seeds, bool) or args.seeds < 1:
        raise PathMNISTError(f"--seeds {args.seeds} is not allowed; use a whole number >= 1.")
    recipes = {}
    for name in args.recipes.split(","):
        if name not in ablation.RECIPES:
            raise PathMNISTError(
                f"unknown recipe {name!r}; choose from {', '.join(ablation.RECIPES)}."
            )
        recipes[name] = ablation.RECIPES[name]
    args.shifts = args.shifts.split(",")
    sizes = QUICK if args.quick else FULL
    args.epochs = args.epochs or sizes["epochs"]
    base = cli.config_from_args(args)
    first = base.seed
    seeds = list(range(first, first + args.seeds))
    ddp.setup(base.device)  # Under torchrun: join the other processes (else nothing).
    with ddp.main_first():  # Rank 0 builds the synthetic sets once.
        shifted = load(args, sizes["sizes"], 28 if args.quick else args.size)
    if ddp.is_main():
        print(
            f"{len(recipes)} recipes x {len(seeds)} seeds x {len(shifted)} shifts, "
            f"{base.epochs} epochs each; writing to {out}"
        )
    key = {
        "sizes": sizes,
        "size": 28 if args.quick else args.size,
        "shifts": {k: SHIFTS.get(k) for k in shifted},
        "data_file": str(args.data_file),
    }
    rows = ablation.run_study(
        shifted,
        recipes,
        seeds,
        base,
        out,
        resume=args.resume,
        overwrite=args.overwrite,
        quiet=args.quiet,
        key=key,
    )

    if not ddp.is_main():  # Rank 0 merged the rows; it writes the rest.
        return

    # %% The table, the figure and the report
    summary = ablation.summarize(rows)
    table = tables.format_ablation(summary)
    figure = comparison_plots.ablation_dots(rows, summary, out / "figures" / "ablation.png")
    run_report.write_report(
        out,
        "Lesson 4: the stain shift, remedy by remedy",
        config=base,
        figures={"Val and test accuracy per recipe": figure},
        sections=[
            f"## Results (mean over seeds, 95% t intervals)\n\n{table}",
            f"Reproduce: `python examples/04_stain_shift.py{' --quick' * args.quick} "
            f"--seeds {args.seeds}`",
        ],
    )
    print(table)


if __name__ == "__main__":
    cli.run(main)
