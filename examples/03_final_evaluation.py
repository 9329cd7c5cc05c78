"""Lesson 3: train the tuned configuration, decide on validation, then open the test split.

Reads best_config.json (from --config, default the tuning run's), trains it on the whole
training split, and compares it on validation with the baseline of lesson 1 (--baseline,
its best.pt). The decision rule is fixed before the test split is opened: carry the tuned
recipe only if it beats the baseline on validation by more than the noise (exact McNemar
test on the same images, p < 0.05); otherwise carry the baseline, the simpler choice. Then
both are evaluated on the held-out test split: accuracy with its 95% interval, macro AUC,
the per-class report, the confusion matrix, ROC curves, and the gap between validation and
test.

    python examples/03_final_evaluation.py --dataset synthetic   # about 7 min on 2 CPU cores
    torchrun --nproc-per-node 2 examples/03_final_evaluation.py --dataset synthetic

Under torchrun the processes train one model with DistributedDataParallel (chapter 14);
rank 0 alone then decides, evaluates, writes and prints.
"""

# %% Imports
from pathlib import Path

from pathmnist import cli
from pathmnist.config import TrainConfig
from pathmnist.evaluation import decision, stats
from pathmnist.report import run_report, tables
from pathmnist.training import ddp, inference, loop
from pathmnist.training.fit import fit

SHIFT = {  # Why the test split may differ, by where the data came from.
    "pathmnist": "PathMNIST's test split (CRC-VAL-HE-7K) comes from another centre, with "
    "another stain, than its training and validation splits (NCT-CRC-HE-100K).",
    "synthetic": "the synthetic test split was made with a stain shift (see lesson 4).",
}


def gap_sentence(val, test) -> str:
    """Val and test are different images, so no paired test: compare their 95% Wilson
    intervals."""
    (vl, vh), (tl, th) = (
        stats.wilson_interval(round(e.accuracy * len(e.labels)), len(e.labels)) for e in (val, test)
    )
    overlap = not (tl > vh or vl > th)
    verdict = (
        "within the noise (the 95% intervals overlap)"
        if overlap
        else ("larger than the noise (the 95% intervals do not overlap)")
    )
    return (
        f"val {val.accuracy:.4f} [{vl:.4f}, {vh:.4f}] vs test {test.accuracy:.4f} "
        f"[{tl:.4f}, {th:.4f}]: a gap of {val.accuracy - test.accuracy:+.4f}, {verdict}"
    )


# %% Training the tuned model
def main(argv=None):
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument(
        "--config",
        type=Path,
        default=Path("runs/02_tuning/best_config.json"),
        help="best_config.json written by examples/02_tuning.py",
    )
    p.add_argument(
        "--baseline",
        type=Path,
        default=Path("runs/01_baseline/best.pt"),
        help="lesson 1's best.pt ('none': no baseline)",
    )
    args = p.parse_args(argv)
    out = cli.check_run_flags(args, args.out or Path("runs/03_final_evaluation"))
    config = cli.config_from_args(args, base=TrainConfig.from_json(args.config))
    baseline = None if str(args.baseline) == "none" else inference.load_checkpoint(args.baseline)
    ddp.setup(config.device)  # Under torchrun: join the other processes (else nothing).
    with ddp.main_first():  # Rank 0 downloads or builds the data once.
        splits = cli.load_data(args)
    if ddp.is_main():
        print(
            f"final training with {config.optimizer} lr {config.lr} batch {config.batch_size} "
            f"for {config.epochs} epochs on {len(splits['train']):,} images; writing to {out}"
        )
    history = fit(
        config,
        splits["train"],
        splits["val"],
        out,
        resume=args.resume,
        overwrite=args.overwrite,
        quiet=args.quiet,
        distributed=True,
    )
    if not ddp.is_main():  # Rank 0 evaluates and writes; the others are done.
        return

    # %% The decision, on validation only
    # Each model predicts as its own run was set up (its device, precision and TTA).
    tuned_predictor = history.predictor
    base_predictor = None
    if baseline is not None:
        base_predictor = loop.Predictor.for_config(
            baseline.model, baseline.eval_transform, baseline.config
        )
    tuned = {"val": tuned_predictor.evaluate(splits["val"])}
    extra = {}
    if baseline is not None:
        base = {"val": base_predictor.evaluate(splits["val"])}
        extra["val_tuned_vs_baseline"] = decision.compare(
            "tuned", tuned["val"], "baseline", base["val"]
        )
    carried = extra["carried"] = decision.carried(extra.get("val_tuned_vs_baseline"))
    print(extra.get("val_tuned_vs_baseline", {}).get("sentence", "no baseline given"))
    print(f"carried to the test split: the {carried} model")

    # %% Validation versus test (the test split is opened here, once)
    tuned["test"] = tuned_predictor.evaluate(splits["test"])
    if baseline is not None:
        base["test"] = base_predictor.evaluate(splits["test"])
        extra["test_tuned_vs_baseline"] = decision.compare(
            "tuned", tuned["test"], "baseline", base["test"]
        )
    final = tuned if carried == "tuned" else base
    gap = gap_sentence(final["val"], final["test"])
    run_report.write_metrics(out, final, extra)
    names = splits["train"].class_names
    figures = run_report.save_figures(out, history, final, names)
    why = SHIFT.get(args.dataset if args.data_file is None else "", "")
    sections = [
        f"## Decision (made on validation)\n\nCarried: the **{carried}** model. "
        + extra.get("val_tuned_vs_baseline", {}).get("sentence", "No baseline was given."),
        f"## Validation versus test\n\n{gap}. {why}".rstrip(),
    ]
    if "test_tuned_vs_baseline" in extra:
        sections.append("On the test split: " + extra["test_tuned_vs_baseline"]["sentence"])
    run_report.write_report(
        out,
        "Lesson 3: final evaluation",
        config=config,
        history=history,
        evaluations=final,
        class_names=names,
        figures=figures,
        sections=sections,
    )
    print(tables.format_table(final, history))
    print(gap)


if __name__ == "__main__":
    cli.run(main)
