"""report.verdicts on hand-made ablation rows: the words follow the paired intervals, the
gap is "closed" only when the baseline's gap is established, a study with too few
converged runs recommends nothing, the early-stopping replay equals EarlyStopping run on
the curve, the sweep chooses on validation."""

import pytest

from pathmnist.report import verdicts
from pathmnist.studies import ablation


def row(recipe, seed, val, test, converged=True, shift="stain", losses=None):
    losses = losses or [1.0, 0.8, 0.7, 0.6]
    return {
        "recipe": recipe,
        "seed": seed,
        "shift": shift,
        "val_accuracy": val,
        "test_accuracy": test,
        "val_macro_auc": 0.9,
        "test_macro_auc": 0.9,
        "best_epoch": min(range(len(losses)), key=losses.__getitem__) + 1,
        "epochs": len(losses),
        "converged": converged,
        "seconds": 1.0,
        "test_recall": [0.5],
        "val_accuracies": [0.5 + 0.1 * k for k in range(len(losses))],
        "val_losses": losses,
        "test_correct": "1100",
    }


def study(up=0.05, noise=(0.0, 0.01, -0.01, 0.02, -0.02), gap=0.1, converged=True):
    rows = []
    for s, e in enumerate(noise):
        rows.append(row("baseline", s, 0.9 + e, 0.9 - gap + e, converged))
        rows.append(row("better", s, 0.9 + e, 0.9 - gap + up + e, converged))
        rows.append(row("same", s, 0.9 + e, 0.9 - gap + (0.03 if s % 2 else -0.03), converged))
    return rows


def test_against_baseline_ranks_only_established_differences():
    rows = study()
    lines = verdicts.against_baseline(ablation.summarize(rows), "stain")
    better = next(line for line in lines if line.startswith("better"))
    same = next(line for line in lines if line.startswith("same"))
    assert "better's test accuracy is higher than the baseline's" in better
    assert "not established with 5 seeds" in same.split(". On validation")[0]
    assert "closes" in better  # the baseline's gap of 0.1 is established
    head = verdicts.headline(ablation.summarize(rows), rows)
    assert head.startswith("On the stain-shifted test split, better raised the test accuracy")
    assert "for same a difference is not established" in head


def test_no_gap_closed_when_the_baselines_gap_is_noise():
    rows = study(gap=0.0, noise=(0.0, 0.05, -0.05, 0.04, -0.04))
    for r in rows:  # a gap that changes sign across seeds: interval includes 0
        if r["recipe"] == "baseline":
            r["test_accuracy"] += 0.03 * (1 if r["seed"] % 2 else -1)
    lines = verdicts.against_baseline(ablation.summarize(rows), "stain")
    assert "not established, so no recipe can be said to close it" in lines[0]
    assert not any("closes" in line for line in lines[1:])


def test_too_few_converged_runs_recommend_nothing():
    rows = study(converged=False)
    assert "recommends nothing" in verdicts.convergence(rows)
    assert verdicts.headline(ablation.summarize(rows), rows).startswith("Too few runs")
    assert "0 of 15 runs converged" in verdicts.convergence(rows)


def test_patience_replay_is_early_stopping_on_the_recorded_losses():
    """Losses 1.0, 0.5, then three epochs worse: patience 3 stops at epoch 5 and keeps 2."""
    r = row("flips", 0, 0.9, 0.8, losses=[1.0, 0.5, 0.6, 0.7, 0.8, 0.4, 0.3])
    (got,) = verdicts.patience_replay([r], patience=3)
    assert (got["stopped_at"], got["kept_epoch"], got["full_best_epoch"]) == (5, 2, 7)
    assert got["kept_val"] == pytest.approx(0.6) and got["full_val"] == pytest.approx(1.1)


def test_sweep_chooses_the_highest_mean_validation_accuracy():
    rows = study()
    for r in rows:
        if r["recipe"] == "same":
            r["val_accuracy"] += 0.02
    chosen, lines = verdicts.sweep_choice(rows, ["baseline", "same"])
    assert chosen == "same" and len(lines) == 2


@pytest.mark.parametrize("lo, hi, word", [(-0.02, -0.01, "lower"), (-0.01, 0.01, "not est")])
def test_calibration_sentence(lo, hi, word):
    m = {
        "temperature": 1.5,
        "ece": 0.03,
        "ece_after_temperature": 0.02,
        "ece_change_ci95": [lo, hi],
    }
    assert word in verdicts.calibration(m)


@pytest.mark.slow
def test_replay_equals_training_with_that_patience(tmp_path):
    """The replay's premise, on a real tiny run: the same seed with patience 1 trains the
    same epochs as with early stopping off until it stops, and stops where the replay of
    the full run's validation losses says."""
    import dataclasses

    from conftest import write_medmnist_npz

    from pathmnist.config import TrainConfig
    from pathmnist.data.dataset import load_split
    from pathmnist.training.fit import fit

    path = write_medmnist_npz(tmp_path / "t.npz", (36, 18, 18), size=32)
    train, val = (load_split(s, data_file=path) for s in ("train", "val"))
    off = TrainConfig(epochs=5, batch_size=8, patience=5, precision="fp32", lr=0.05)
    full = fit(off, train, val, tmp_path / "off", quiet=True)
    short = fit(dataclasses.replace(off, patience=1), train, val, tmp_path / "p1", quiet=True)
    r = row("x", 0, 0, 0, losses=[h["val_loss"] for h in full.rows])
    r["val_accuracies"] = [h["val_acc"] for h in full.rows]
    (replay,) = verdicts.patience_replay([r], patience=1)
    assert replay["stopped_at"] == len(short.rows)
    assert [h["val_loss"] for h in short.rows] == r["val_losses"][: len(short.rows)]
    assert replay["kept_epoch"] == short.best_epoch
