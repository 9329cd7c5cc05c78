"""Stage 6, many runs compared (lessons 2 and 4).

- `folder`: one study folder: its key file, results.csv rows, running one trial.
- `grid`: the seed's grid search over seeds. `halving`: successive halving.
- `ablation`: recipes against the baseline over seeds and shifts.
"""
