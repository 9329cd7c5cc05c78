"""Lesson 4's ablation: which remedy closes how much of the val-to-test gap, over seeds.

Each recipe is the seed's baseline plus named changes (augmentations, stain normalisation,
test-time augmentation); each runs with several seeds on each shifted data set (a test
split with a stain shift, one with a scanner shift). One row per (recipe, seed, shift)
goes to results.csv as soon as that run ends, so an interrupted study resumes without
redoing finished runs (an unfinished run continues from its last.pt). `summarize` gives,
per shift and recipe, the mean val and test accuracy and the mean gap with 95% t intervals
over seeds, and the share of the baseline's gap that the recipe closes.

Under torchrun the runs are shared out over the processes (`training.ddp.map_jobs`),
rank 0 writing the rows in the same order as one process.

Tested in tests/test_ablation.py (resume skips finished rows, the summary against numpy
and stats.mean_interval, a changed study refused).
"""

import contextlib
import csv
import dataclasses
import io
import json
import time
from pathlib import Path

from pathmnist.config import TrainConfig
from pathmnist.errors import PathMNISTError
from pathmnist.evaluation import metrics, stats
from pathmnist.files import write_json, write_text
from pathmnist.training import ddp, rundir
from pathmnist.training.fit import fit

# The recipes, each adding to the one before, in the order the chapter tells them.
RECIPES = {
    "baseline": {},
    "flips": {"augment": ("flips",)},
    "flips+hed": {"augment": ("flips", "hed-strong")},
    "flips+macenko": {"augment": ("flips",), "stain_normalize": True},
    "flips+hed+tta": {"augment": ("flips", "hed-strong"), "tta": True},
    # Tellez's lighter preset, run after the strong one collapsed validation accuracy on
    # the lab bench (chapter 12).
    "flips+hed-light": {"augment": ("flips", "hed-light")},
    "flips+hed-light+tta": {"augment": ("flips", "hed-light"), "tta": True},
    # Lesson 5's class-aware losses, against the baseline's cross-entropy.
    "weighted": {"loss": "weighted"},
    "focal": {"loss": "focal"},
}
LESSON4 = ("baseline", "flips", "flips+hed", "flips+macenko", "flips+hed+tta")
COLUMNS = [
    "recipe",
    "seed",
    "shift",
    "val_accuracy",
    "test_accuracy",
    "val_macro_auc",
    "test_macro_auc",
    "best_epoch",
    "seconds",
    "test_recall",  # Per-class recall on test, space-separated, in label order.
]


def read_rows(path) -> list[dict]:
    """results.csv as typed dicts (no file: no rows)."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != COLUMNS:
            raise PathMNISTError(f"{path} is not an ablation results file; use another --out.")
        try:
            return [
                {
                    **r,
                    "seed": int(r["seed"]),
                    "best_epoch": int(r["best_epoch"]),
                    **{c: float(r[c]) for c in [*COLUMNS[3:7], "seconds"]},
                    "test_recall": [float(v) for v in r["test_recall"].split()],
                }
                for r in reader
            ]
        except ValueError as e:
            raise PathMNISTError(f"{path} holds a value that is not a number ({e}).") from None


def _write_rows(path, rows) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(
        {**r, "test_recall": " ".join(f"{v:.6f}" for v in r["test_recall"])} for r in rows
    )
    write_text(path, buffer.getvalue())


def run_study(
    data: dict,
    recipes: dict,
    seeds,
    base: TrainConfig,
    out_dir,
    resume=False,
    overwrite=False,
    quiet=False,
    key=None,
) -> list[dict]:
    """Train every (shift, recipe, seed) and evaluate it on val and test.

    `data` maps a shift name to its {"train", "val", "test"} ImageSets; `key` (any JSON) is
    what identifies the study beside the recipes and seeds (data files, sizes, epochs):
    a resume with another key is refused."""
    study = {
        "recipes": {
            k: {f: list(v) if isinstance(v, tuple) else v for f, v in r.items()}
            for k, r in recipes.items()
        },
        "seeds": list(seeds),
        "shifts": list(data),
        "base": base.to_dict(),
        "key": key,
    }
    with contextlib.ExitStack() as held:

        def start(study=study):  # Rank 0 only, under torchrun; the others get its rows.
            out = held.enter_context(rundir.lock(out_dir))
            rundir.check_start(out, resume, overwrite, resume_file="study.json")
            study = json.loads(json.dumps(study))  # Tuples become lists, as in the file.
            if resume and json.loads((out / "study.json").read_text()) != study:
                raise PathMNISTError(
                    f"cannot resume the study in {out}: its recipes, seeds, data or settings "
                    "differ from this command's; rerun with the same flags, or pass --overwrite."
                )
            rundir.start(out, resume, overwrite, resume_file="study.json")
            write_json(out / "study.json", study)
            return out, read_rows(out / "results.csv")

        out, rows = ddp.from_main(start)
        done = {(r["recipe"], r["seed"], r["shift"]) for r in rows}
        todo = [
            (shift, name, seed)
            for shift in data
            for name in recipes
            for seed in seeds
            if (name, seed, shift) not in done
        ]

        def work(job):  # Under torchrun, job i runs on rank i % N, in one process.
            shift, name, seed = job
            return _one(data[shift], name, recipes[name], seed, shift, base, out, quiet)

        def record(row):  # Rank 0, in job order.
            rows.append(row)
            _write_rows(out / "results.csv", rows)

        ddp.map_jobs(work, todo, record)
        return rows


def _one(splits, name, changes, seed, shift, base, out, quiet) -> dict:
    """Train and evaluate one recipe with one seed on one shift; its results row."""
    config = dataclasses.replace(base, seed=seed, **changes).validate()
    run_dir = out / shift / name / f"seed={seed}"
    if not quiet:
        print(f"{shift} / {name} / seed {seed}")
    start = time.perf_counter()
    resume = (run_dir / "last.pt").exists()
    overwrite = not resume and rundir.holds_run(run_dir)
    history = fit(
        config,
        splits["train"],
        splits["val"],
        run_dir,
        resume=resume,
        overwrite=overwrite,
        quiet=True,
    )
    ev = {s: history.predictor.evaluate(splits[s]) for s in ("val", "test")}
    for f in ("last.pt", "best.pt"):  # 30 runs x 2 ResNet-18s would take 5 GB.
        (run_dir / f).unlink(missing_ok=True)
    return {
        "recipe": name,
        "seed": seed,
        "shift": shift,
        "val_accuracy": ev["val"].accuracy,
        "test_accuracy": ev["test"].accuracy,
        "val_macro_auc": ev["val"].macro_auc,
        "test_macro_auc": ev["test"].macro_auc,
        "best_epoch": history.best_epoch,
        "seconds": round(time.perf_counter() - start, 1),
        "test_recall": _recall(ev["test"]),
    }


def _recall(ev) -> list[float]:
    """Per-class recall on a split (true positives / images of the class)."""
    cm = metrics.confusion_matrix(ev.labels, ev.probs.argmax(1), ev.probs.shape[1])
    return (cm.diagonal() / cm.sum(1).clip(min=1)).tolist()


def summarize(rows) -> list[dict]:
    """Per (shift, recipe), in first-seen order: n seeds, mean val/test accuracy and gap
    (val - test) with 95% t intervals, mean test macro AUC, and the share of the same
    shift's baseline gap closed (1 - gap / baseline gap)."""
    groups = {}
    for r in rows:
        groups.setdefault((r["shift"], r["recipe"]), []).append(r)
    out = []
    for (shift, recipe), runs in groups.items():
        entry = {"shift": shift, "recipe": recipe, "n": len(runs)}
        for name, values in (
            ("val", [r["val_accuracy"] for r in runs]),
            ("test", [r["test_accuracy"] for r in runs]),
            ("gap", [r["val_accuracy"] - r["test_accuracy"] for r in runs]),
            ("test_auc", [r["test_macro_auc"] for r in runs]),
        ):
            mean, low, high = stats.mean_interval(values)
            if name != "gap":  # An accuracy or AUC cannot leave [0, 1]; a gap can be < 0.
                low, high = max(low, 0.0), min(high, 1.0)
            entry[name], entry[f"{name}_low"], entry[f"{name}_high"] = mean, low, high
        out.append(entry)
    for entry in out:
        base = next(
            (e for e in out if e["shift"] == entry["shift"] and e["recipe"] == "baseline"), None
        )
        ok = base is not None and base["gap"] > 0
        entry["gap_closed"] = 1 - entry["gap"] / base["gap"] if ok else float("nan")
    return out
