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
from pathmnist.report import plots, run_report, tables
from pathmnist.training import ddp, inference, loop
from pathmnist.training.fit import fit
from pathmnist.training.history import History

KIND = "03_final_evaluation"  # The run folder's kind (rundir): another run's is refused.

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
    out = cli.check_run_flags(args, args.out or Path("runs/03_final_evaluation"), kind=KIND)
    config = cli.config_from_args(args, base=TrainConfig.from_json(args.config))
    baseline = None if str(args.baseline) == "none" else inference.load_checkpoint(args.baseline)
    ddp.setup(config.device)  # Under torchrun: join the other processes (else nothing).
    with ddp.main_first():  # Rank 0 downloads or builds the data once.
        splits = cli.load_data(args)
    if baseline is not None:  # Before anything is trained or written: the same data?
        inference.check_trained_on(args.baseline, splits, "the --baseline")
        base_history = args.baseline.parent / "history.csv"
        base_history = History.from_csv(base_history) if base_history.exists() else None
    if ddp.is_main():
        print(
            f"final training with {config.optimizer} lr {config.lr} batch {config.batch_size} "
            f"for {config.epochs} epochs on {len(splits['train']):,} images; writing to {out}"
        )
    with ddp.hold(out, KIND, args.resume, args.overwrite):  # To the last byte.
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
        predictors = {"tuned": history.predictor}
        if baseline is not None:
            predictors["baseline"] = loop.Predictor.for_config(
                baseline.model, baseline.eval_transform, baseline.config
            )

        def evaluate(name, split):
            return predictors[name].evaluate(splits[split])

        tuned = {"val": evaluate("tuned", "val")}
        extra = {}
        if baseline is not None:
            base = {"val": evaluate("baseline", "val")}
            extra["val_tuned_vs_baseline"] = decision.compare(
                "tuned", tuned["val"], "baseline", base["val"]
            )
        carried = extra["carried"] = decision.carried(extra.get("val_tuned_vs_baseline"))
        print(extra.get("val_tuned_vs_baseline", {}).get("sentence", "no baseline given"))
        print(f"carried to the test split: the {carried} model")

        # %% Validation versus test (the test split is opened here, once)
        tuned["test"] = evaluate("tuned", "test")
        if baseline is not None:
            base["test"] = evaluate("baseline", "test")
            extra["test_tuned_vs_baseline"] = decision.compare(
                "tuned", tuned["test"], "baseline", base["test"]
            )
        # One model per report: the carried one's settings, curves and metrics; the other
        # model gets its own labelled section below.
        models = {"tuned": (config, history, tuned, out / "best.pt")}
        if baseline is not None:
            models["baseline"] = (baseline.config, base_history, base, args.baseline)
        final_config, final_history, final, checkpoint = models[carried]
        extra["carried_checkpoint"] = str(checkpoint)
        gap = gap_sentence(final["val"], final["test"])
        names = splits["train"].class_names
        figures = run_report.save_figures(
            out, final_history, final, names, split_images={s: splits[s] for s in final}
        )
        why = SHIFT.get(args.dataset if args.data_file is None else "", "")
        sections = [
            f"## Decision (made on validation)\n\nCarried: the **{carried}** model "
            f"(`{checkpoint}`); everything above this section is that model's. "
            + extra.get("val_tuned_vs_baseline", {}).get("sentence", "No baseline was given."),
            f"## Validation versus test\n\n{gap}. {why}".rstrip(),
        ]
        if "test_tuned_vs_baseline" in extra:
            sections.append("On the test split: " + extra["test_tuned_vs_baseline"]["sentence"])
        for name, (cfg, hist, evs, path) in models.items():
            if name == carried:
                continue
            extra["rejected"] = {s: run_report.split_metrics(ev, 0) for s, ev in evs.items()}
            curves = {}
            if hist is not None and hist.rows:
                fig_dir = out / "figures"
                curves["Loss"] = plots.loss_curve(hist, fig_dir / "rejected_loss_curve.png")
                curves["Accuracy"] = plots.accuracy_curve(
                    hist, fig_dir / "rejected_accuracy_curve.png"
                )
            sections.append(
                tables.format_rejected(name, path, cfg, final_config, hist, evs, curves, out)
            )
        run_report.write_metrics(out, final, extra)
        run_report.write_report(
            out,
            "Lesson 3: final evaluation",
            data=cli.data_description(args),
            config=final_config,
            history=final_history,
            evaluations=final,
            class_names=names,
            figures=figures,
            sections=sections,
        )
    print(tables.format_table(final, final_history))
    print(gap)


if __name__ == "__main__":
    cli.run(main)
