"""The outputs of `--strategy optuna`, as the other strategies write them: best_config.json
(which lesson 3 reads), report.md with the ranking and the compute, and figures from
Optuna's own `optuna.visualization.matplotlib` (optimisation history, parameter
importances) saved as PNG, plus the course's chart of the trials (`trials_bar`).

Parameter importances (Optuna's default evaluator, PED-ANOVA) need at least two
complete trials whose parameters differ; otherwise the report says so in one sentence.

Tested in tests/test_optuna_search.py (the files exist, best_config.json loads as a
TrainConfig, the degenerate importances sentence).
"""

import warnings
from pathlib import Path

from pathmnist.errors import PathMNISTError
from pathmnist.files import write_json
from pathmnist.report import comparison_plots, run_report, tables
from pathmnist.report.plots import _save
from pathmnist.studies import optuna_storage

NO_IMPORTANCES = (
    "Parameter importances need at least two complete trials whose parameters differ; "
    "this study has {n} complete trial(s){same}, so there is no importance figure."
)


def _optuna_figure(plot, study, path):
    """Draw one of optuna.visualization.matplotlib's plots and save it as PNG."""
    import matplotlib
    from matplotlib import pyplot  # Optuna's plots draw on pyplot figures.

    # rc_context: Optuna switches pyplot's style, which would restyle later figures.
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore")  # Its plots are marked experimental.
        ax = plot(study)
    fig = ax.figure
    fig.set_size_inches(7, 4)
    try:
        return _save(fig, path)
    finally:
        pyplot.close(fig)


def optuna_figures(study, fig_dir) -> tuple[dict, str]:
    """({name: path} of the figures drawn, the sentence about importances or "")."""
    from optuna.visualization import matplotlib as vis

    fig_dir = Path(fig_dir)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    figures, note = {}, ""
    if complete:
        figures["Optimisation history"] = _optuna_figure(
            vis.plot_optimization_history, study, fig_dir / "optimization_history.png"
        )
    varying = len({tuple(sorted(t.params.items())) for t in complete}) > 1
    if len(complete) >= 2 and varying:
        figures["Parameter importances"] = _optuna_figure(
            vis.plot_param_importances, study, fig_dir / "param_importances.png"
        )
    else:
        same = ", all with the same parameters" if len(complete) >= 2 else ""
        note = NO_IMPORTANCES.format(n=len(complete), same=same)
    return figures, note


def write_outputs(out_dir, study, rows, base, max_epochs, n_images, title) -> dict:
    """best_config.json, figures/ and report.md of a finished study; returns the best
    summary entry (`optuna_storage.summarize`'s first)."""
    out_dir = Path(out_dir)
    summary = optuna_storage.summarize(rows, max_epochs)
    if not summary:
        raise PathMNISTError(
            "the study has no complete trial (all were pruned or failed); raise --trials."
        )
    best = summary[0]
    write_json(
        out_dir / "best_config.json", optuna_storage.config_of(base, best["params"]).to_dict()
    )
    figures, note = optuna_figures(study, out_dir / "figures")
    figures["Trials"] = comparison_plots.trials_bar(summary, out_dir / "figures" / "trials.png")
    states = {s: sum(r["state"] == s for r in rows) for s in ("COMPLETE", "PRUNED", "FAIL")}
    retried = sum(r["retry_of"] != "" for r in rows)
    spent = optuna_storage.compute(rows, n_images)
    sections = [
        f"## Results of the complete trials (best first)\n\n{tables.format_results(summary)}",
        f"Trials: {states['COMPLETE']} complete, {states['PRUNED']} pruned, "
        f"{states['FAIL']} failed ({retried} retried). Compute: {spent:,} image-epochs over "
        f"{len(rows)} trials (results.csv: one row per trial).",
        f"Best: `{best['params']}` -> best_config.json",
    ]
    if note:
        sections.append(note)
    run_report.write_report(out_dir, title, config=base, figures=figures, sections=sections)
    return {**best, "compute": spent, "summary": summary, "states": states}
