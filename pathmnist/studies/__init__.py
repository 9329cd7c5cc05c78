"""Stage 6, many runs compared (lessons 2 and 4).

- `folder`: one study folder: its key file, results.csv rows, running one trial.
- `grid`: the seed's grid search over seeds. `halving`: successive halving.
- `ablation`: recipes against the baseline over seeds and shifts; `recipes`: the named
  recipes (lesson 4's and the sweep's).
- `optuna_search`, `optuna_space`, `optuna_storage`: the same search with Optuna (TPE and
  a successive-halving pruner) on shared storage: the workers, the search spaces, and the
  storage with heartbeats and retries (chapter 8).
"""
