"""The ablation study (lesson 4) and the lesson-5 analysis on tiny data: rows written as
runs finish, with the convergence record and the per-image test results; shifts that share
train and val train once; a resume skips finished rows, a changed study or a damaged row is
refused; the summary equals numpy's means and stats.mean_interval and its paired
comparisons equal decision.paired; the figure is a PNG; calibration and example picking."""

import csv
import json

import numpy as np
import pytest
import torch
from conftest import write_medmnist_npz
from PIL import Image

from pathmnist.config import TrainConfig
from pathmnist.data.dataset import load_split
from pathmnist.errors import PathMNISTError
from pathmnist.evaluation import calibration, decision, gradcam, stats
from pathmnist.report import comparison_plots
from pathmnist.studies import ablation
from pathmnist.training import inference

BASE = TrainConfig(epochs=1, batch_size=16, precision="fp32")
RECIPES = {"baseline": {}, "flips": {"augment": ("flips",)}}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A 2-recipe, 2-seed study on one tiny shifted set; its folder and rows."""
    d = tmp_path_factory.mktemp("study")
    path = write_medmnist_npz(d / "t.npz", (36, 18, 18), size=32)
    data = {"stain": {s: load_split(s, data_file=path) for s in ("train", "val", "test")}}
    # A second shift with the same train and val but its own test split (the val images).
    data["scanner"] = {**data["stain"], "test": data["stain"]["val"]}
    rows = ablation.run_study(data, RECIPES, [0, 1], BASE, d / "out", quiet=True)
    return d, data, rows


def test_one_row_per_recipe_seed_and_shift(study):
    """results.csv has the columns the chapter reads and one row per run, no checkpoints."""
    d, data, rows = study
    with open(d / "out" / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0])[:7] == [
        "recipe",
        "seed",
        "shift",
        "val_accuracy",
        "test_accuracy",
        "val_macro_auc",
        "test_macro_auc",
    ]
    assert list(table[0]) == ablation.COLUMNS
    assert {(r["recipe"], r["seed"]) for r in rows} == {(n, s) for n in RECIPES for s in (0, 1)}
    assert len(rows) == 2 * 2 * 2
    assert not list((d / "out").rglob("*.pt"))
    assert all(len(r["test_recall"]) == 9 for r in rows)
    for r in rows:  # The convergence record is decision.converged of the run's curve.
        assert r["epochs"] == len(r["val_accuracies"]) == len(r["val_losses"]) == BASE.epochs
        assert r["converged"] == decision.converged(
            r["val_accuracies"], r["best_epoch"], BASE.epochs, BASE.step_size, 18
        )
        assert len(r["test_correct"]) == len(data[r["shift"]]["test"])


def test_shifts_that_share_train_and_val_train_once(study):
    """One training per recipe and seed serves both shifts: one run folder each, equal
    val results, and the second shift's test accuracy is the val accuracy (same images)."""
    d, _, rows = study
    assert sorted(p.parent.parent.name for p in (d / "out").rglob("history.csv")) == sorted(
        [n for n in RECIPES for _ in (0, 1)]
    )
    for name in RECIPES:
        for seed in (0, 1):
            stain, scanner = (
                next(r for r in rows if (r["recipe"], r["seed"], r["shift"]) == (name, seed, s))
                for s in ("stain", "scanner")
            )
            assert stain["val_accuracy"] == scanner["val_accuracy"] == scanner["test_accuracy"]
            assert stain["val_accuracies"] == scanner["val_accuracies"]


def test_a_damaged_row_is_refused(study, tmp_path):
    """A row whose converged or test_correct field is not what the study writes is one
    sentence, not a silently wrong verdict."""
    d, _, _ = study
    text = (
        (d / "out" / "results.csv")
        .read_text()
        .replace(",True,", ",maybe,")
        .replace(",False,", ",maybe,")
    )
    (tmp_path / "results.csv").write_text(text)
    with pytest.raises(PathMNISTError, match="not a number"):
        ablation.read_rows(tmp_path / "results.csv")


def test_resume_skips_finished_runs_and_refuses_another_study(study):
    """A resume with the same study trains nothing (the results file is unchanged); one with
    other seeds is refused with one sentence."""
    d, data, _ = study
    before = (d / "out" / "results.csv").read_bytes()
    again = ablation.run_study(data, RECIPES, [0, 1], BASE, d / "out", resume=True, quiet=True)
    assert again == ablation.read_rows(d / "out" / "results.csv")
    assert (d / "out" / "results.csv").read_bytes() == before
    with pytest.raises(PathMNISTError, match="cannot resume the study"):
        ablation.run_study(data, RECIPES, [0, 2], BASE, d / "out", resume=True, quiet=True)
    with pytest.raises(PathMNISTError, match="already holds a run"):
        ablation.run_study(data, RECIPES, [0, 1], BASE, d / "out", quiet=True)


def test_a_resume_may_add_recipes_but_not_drop_or_change_one(study, tmp_path):
    """A finished study gains a recipe: only its runs train, the old rows stay as they
    were; a dropped or changed recipe is refused; a base written before a TrainConfig field
    existed counts that field at its default."""
    import shutil

    d, data, _ = study
    out = tmp_path / "out"
    shutil.copytree(d / "out", out)
    key = json.loads((out / "study.json").read_text())
    del key["base"]["randaugment_m"]  # As written by the code before that field.
    (out / "study.json").write_text(json.dumps(key))
    more = {**RECIPES, "flips+hed-light": {"augment": ("flips", "hed-light")}}
    for bad in ({"baseline": {}}, {**RECIPES, "flips": {"augment": ("flips", "color")}}):
        with pytest.raises(PathMNISTError, match="adding recipes is allowed"):
            ablation.run_study(data, bad, [0, 1], BASE, out, resume=True, quiet=True)
    before, old = (out / "results.csv").read_text(), ablation.read_rows(out / "results.csv")
    grown = ablation.run_study(data, more, [0, 1], BASE, out, resume=True, quiet=True)
    assert (out / "results.csv").read_text().startswith(before)
    assert grown[: len(old)] == old
    assert {(r["recipe"], r["seed"], r["shift"]) for r in grown[len(old) :]} == {
        ("flips+hed-light", s, shift) for s in (0, 1) for shift in ("stain", "scanner")
    }
    assert list(json.loads((out / "study.json").read_text())["recipes"]) == list(more)


def test_every_recipe_is_a_valid_change_of_the_baseline():
    """Each named recipe replaces TrainConfig fields with allowed values; the lesson's
    default and the sweep name recipes of the table."""
    import dataclasses

    from pathmnist.studies import recipes

    for name, changes in recipes.RECIPES.items():
        config = dataclasses.replace(TrainConfig(), **changes).validate()
        assert all(getattr(config, k) == v for k, v in changes.items()), name
    assert set(recipes.LESSON4) | set(recipes.SWEEP) <= set(recipes.RECIPES)
    assert "pretrained" not in recipes.LESSON4  # The default needs no download.


def test_summary_is_the_mean_and_t_interval_over_seeds(study):
    """Each summary entry's val, test and gap are numpy means with stats.mean_interval's
    interval; the baseline closes 0% of its own gap."""
    _, _, rows = study
    summary = ablation.summarize(rows)
    for e in summary:
        runs = [r for r in rows if (r["recipe"], r["shift"]) == (e["recipe"], e["shift"])]
        gaps = [r["val_accuracy"] - r["test_accuracy"] for r in runs]
        assert e["gap"] == pytest.approx(np.mean(gaps))
        assert (e["gap"], e["gap_low"], e["gap_high"]) == pytest.approx(stats.mean_interval(gaps))
        assert e["n"] == 2
        assert e["converged"] == sum(r["converged"] for r in runs if r["shift"] == e["shift"])
    for e in summary:
        if e["recipe"] == "baseline":
            assert e["vs_baseline"] is None and e["gap_closed"] is None
            continue
        mine = [r for r in rows if (r["recipe"], r["shift"]) == (e["recipe"], e["shift"])]
        base = [r for r in rows if (r["recipe"], r["shift"]) == ("baseline", e["shift"])]
        want = decision.paired(mine, base, "test_accuracy")
        assert e["vs_baseline"]["test_accuracy"] == pytest.approx(want, nan_ok=True)


def test_ablation_figure_is_a_png(study, tmp_path):
    """The figure opens as a PNG; no rows is one sentence."""
    _, _, rows = study
    path = comparison_plots.ablation_dots(rows, ablation.summarize(rows), tmp_path / "a.png")
    assert Image.open(path).format == "PNG"
    with pytest.raises(PathMNISTError, match="no ablation runs"):
        comparison_plots.ablation_dots([], [], tmp_path / "b.png")


def test_calibrate_fits_on_val_and_keeps_test_accuracy():
    """Temperature scaling changes no prediction; its T equals calibration.fit_temperature
    on the validation logits; ECE values are in [0, 1]."""
    rng = np.random.default_rng(0)
    y_val, y_test = rng.integers(0, 9, 300), rng.integers(0, 9, 200)
    val = rng.normal(size=(300, 9)) * 3 + 4 * np.eye(9)[y_val]
    test = rng.normal(size=(200, 9)) * 3 + 4 * np.eye(9)[y_test]
    cal = calibration.calibrate(val, y_val, test, y_test)
    assert cal["temperature"] == pytest.approx(calibration.fit_temperature(val, y_val))
    assert cal["accuracy"] == cal["accuracy_after_temperature"]
    assert 0 <= cal["ece_after_temperature"] <= 1 and 0 <= cal["ece"] <= 1


def test_pick_examples_takes_one_right_and_one_wrong_per_class():
    """Correct picks first, one per class that has one, then wrong ones."""
    labels = np.array([0, 0, 1, 1, 2])
    preds = np.array([0, 1, 1, 0, 0])
    idx = gradcam.pick_examples(labels, preds, 3)
    right = [i for i in idx if labels[i] == preds[i]]
    wrong = [i for i in idx if labels[i] != preds[i]]
    assert list(idx) == right + wrong
    assert sorted(labels[right]) == [0, 1] and sorted(labels[wrong]) == [0, 1, 2]


def test_open_run_refuses_a_missing_or_broken_folder(tmp_path):
    """A missing folder, or one whose best.pt is not a checkpoint, is one sentence."""
    with pytest.raises(PathMNISTError, match="no run folder"):
        inference.open_run(tmp_path / "nope")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(PathMNISTError, match="not a readable checkpoint"):
        inference.open_run(tmp_path / "run")
    torch.save({"x": 1}, tmp_path / "run" / "best.pt")
    with pytest.raises(PathMNISTError, match="not a pathmnist checkpoint"):
        inference.open_run(tmp_path / "run")
    assert json.dumps(BASE.to_dict())  # The config stays JSON-ready.
