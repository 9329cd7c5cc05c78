"""Stage 7, what a run or study leaves for people to read.

- `plots`: a run's figures (curves, confusion matrices, ROC, recall, montage).
- `comparison_plots`: figures that compare trials or recipes.
- `model_plots`: figures of what a trained model does (reliability, Grad-CAM).
- `tables`: every Markdown table and `format_*` text.
- `run_report`: metrics.json, the figures and report.md of a run.
- `verdicts`: the conclusion sentences of chapters 8, 9, 12 and 13, generated from the
  run files (a sentence ranks two things only when their paired interval excludes 0).
- `optuna_report`: an Optuna study's best_config.json, report.md and figures.
"""
