"""Lesson 4: close the test shift the seed left open, and measure what each remedy does.

Recipes (pathmnist.studies.recipes.RECIPES): the seed's baseline; + flips and rotations; + HED
stain jitter; + Macenko stain normalisation; + RandStainNA; + RandAugment (and, with
torchvision's ImageNet file, `pretrained`). Each
runs with --seeds seeds on two synthetic sets whose test splits differ from training in
different ways: a stain shift (what stain augmentation models) and a scanner shift (blur
and JPEG, which it does not). Writes results.csv (one row per recipe, seed and shift),
a figure, and report.md; rerun with --resume after an interruption.

    python examples/04_stain_shift.py --dataset synthetic --quick   # a few minutes
    python examples/04_stain_shift.py --dataset synthetic --size 28 --seeds 5  # the chapter's
    python examples/04_stain_shift.py --dataset pathmnist          # the real data ("real")

On the real PathMNIST (or a --data-file) there is one shift, the one its test centre brings
("real"); the synthetic sets have two, "stain" and "scanner". Every recipe trains the same
budget through the whole StepLR schedule: early stopping is off unless --patience is given
(the seed's patience 3 can stop a run right after the decay it needed; chapter 12).
Under `torchrun --nproc-per-node N` each training (a recipe and seed, tested on every
shift) runs in one process, training i on rank i % N; rank 0 writes results.csv (equal to
one process's) and the report.
"""

# %% Imports
import dataclasses
from pathlib import Path

from pathmnist import cli
from pathmnist.config import MAX_SEED
from pathmnist.data import dataset as data
from pathmnist.data import synthetic
from pathmnist.errors import PathMNISTError
from pathmnist.model import pretrained
from pathmnist.report import comparison_plots, run_report, tables
from pathmnist.studies import ablation
from pathmnist.studies.recipes import LESSON4, RECIPES
from pathmnist.training import ddp

KIND = "04_stain_shift"  # The run folder's kind (rundir): another run's is refused.
SHIFTS = {  # name -> the synthetic generator's test-split settings
    "stain": {"shift": synthetic.DEFAULT_SHIFT, "scanner": 0.0},
    "scanner": {"shift": 0.0, "scanner": 1.0},
}
# The synthetic sets' split sizes and the epochs: --quick at 28x28 (a fifth of the compute
# of 64x64), the recorded lab-bench study at --size (default 64).
QUICK = {"sizes": (600, 200, 200), "epochs": 3}
# 12 epochs with StepLR(5): the rate falls after epochs 5 and 10, and two epochs follow the
# last decay, so a run can both use it and show that it has settled.
FULL = {"sizes": (1200, 400, 400), "epochs": 12}


# %% The data sets
def check_shifts(args) -> list[str]:
    """The shifts the flags ask for, refusing combinations that would ignore a flag."""
    real = args.dataset == "pathmnist" or args.data_file is not None
    shifts = (args.shifts or ("real" if real else "stain,scanner")).split(",")
    for name in shifts:
        if name not in (*SHIFTS, "real"):
            raise PathMNISTError(f"unknown shift {name!r}; choose from stain, scanner (or real).")
    if len(set(shifts)) != len(shifts) or ("real" in shifts and len(shifts) > 1):
        raise PathMNISTError(f"--shifts {','.join(shifts)}: name each shift once, real alone.")
    if real and shifts != ["real"]:
        raise PathMNISTError(
            f"--shifts {','.join(shifts)} makes synthetic sets, but --dataset pathmnist or "
            "--data-file selects real data; pass --dataset synthetic, or --shifts real."
        )
    if not real and "real" in shifts:
        raise PathMNISTError(
            "--shifts real needs real data, but --dataset synthetic has none; pass --dataset "
            "pathmnist (or --data-file), or --shifts stain,scanner."
        )
    return shifts


def load(args, sizes, size):
    """{shift name: {split: ImageSet}} for the chosen shifts; --subset keeps a stratified
    fraction of every training split (the same images for every shift)."""
    if args.shifts == ["real"]:
        out = {"real": cli.load_data(args)}
    else:
        root = args.data_root or data.default_root()
        out = {}
        for name in args.shifts:
            path = synthetic.ensure_synthetic(root, sizes=sizes, size=size, **SHIFTS[name])
            out[name] = {s: data.load_split(s, data_file=path) for s in data.SPLITS}
            if args.subset is not None:
                out[name]["train"] = data.stratified_subset(
                    out[name]["train"], args.subset, seed=args.seed or 0
                )
    return out


def main(argv=None):
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3, help="seeds per recipe (default 3)")
    p.add_argument("--quick", action="store_true", help="tiny sets at 28x28, 3 epochs")
    p.add_argument(
        "--recipes",
        default=",".join(LESSON4),
        help=f"comma-separated recipe names from {', '.join(RECIPES)} (default: "
        "lesson 4's six; a --resume may add recipes)",
    )
    p.add_argument(
        "--shifts",
        help="stain,scanner (synthetic, the default there) or real (PathMNIST, --data-file)",
    )
    p.add_argument(
        "--patience",
        type=int,
        help="early stopping's patience (default: off, every run trains --epochs epochs)",
    )
    args = p.parse_args(argv)
    out = cli.check_run_flags(args, args.out or Path("runs/04_stain_shift"), kind=KIND)
    if args.seeds is None or isinstance(args.seeds, bool) or args.seeds < 1:
        raise PathMNISTError(f"--seeds {args.seeds} is not allowed; use a whole number >= 1.")
    recipes = {}
    for name in args.recipes.split(","):
        if name not in RECIPES:
            raise PathMNISTError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}.")
        recipes[name] = RECIPES[name]
    args.shifts = check_shifts(args)
    sizes = QUICK if args.quick else FULL
    args.epochs = args.epochs or sizes["epochs"]
    base = cli.config_from_args(args)
    # Off: a patience as long as the budget never fires, so every recipe trains the same
    # epochs through both decays (best weights, by validation loss, are still kept).
    patience = base.epochs if args.patience is None else args.patience
    base = dataclasses.replace(base, patience=patience).validate()
    first = base.seed
    if first + args.seeds - 1 > MAX_SEED:
        raise PathMNISTError(
            f"--seed {first} with --seeds {args.seeds} goes past seed {MAX_SEED}; lower one."
        )
    seeds = list(range(first, first + args.seeds))
    ddp.setup(base.device)  # Under torchrun: join the other processes (else nothing).
    with ddp.main_first():  # Rank 0 builds the synthetic sets (and fetches weights) once.
        if any(r.get("weights") == "imagenet" for r in recipes.values()):
            # Before any run starts: offline, one sentence says where the file goes, and no
            # recipe has trained in vain.
            pretrained.imagenet_state_dict(base.arch)
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
        "dataset": args.dataset,
        "subset": args.subset,
    }
    with ddp.hold(out, KIND, args.resume, args.overwrite):  # To the last byte.
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
            data=cli.data_description(args),
            config=base,
            figures={"Val and test accuracy per recipe": figure},
            sections=[
                f"## Results (mean over seeds, 95% t intervals)\n\n{table}",
                f"Runs converged (decision.converged): "
                f"{ablation.converged_share(rows):.0%}. Images {key['size']}x{key['size']}, "
                f"{base.epochs} epochs, StepLR({base.step_size}), patience {base.patience}.",
            ],
        )
    print(table)


if __name__ == "__main__":
    cli.run(main)
