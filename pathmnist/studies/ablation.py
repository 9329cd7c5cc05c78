"""Lesson 4's ablation: what each remedy does to the shifted test accuracy, seed by seed.

Each recipe (`studies.recipes`) is the source project's baseline plus named changes; each
runs with several seeds. Shifted sets that share their training and validation splits
(the synthetic stain and scanner sets move only the test split) share one training per
recipe and seed, tested on each shift's test split. One row per (recipe, seed, shift) goes
to results.csv as soon as that training ends, with the run's best epoch, epochs run,
whether it converged (`decision.converged`), its validation curve and which test images it
got right; an interrupted study resumes without redoing finished rows, and a resume may
add recipes. Under torchrun the trainings are shared out over the processes
(`training.ddp.map_jobs`), rank 0 writing the rows in one process's order. `summarize`
gives, per shift and recipe, mean val and test accuracy and gap with 95% t intervals over
seeds, and the paired comparison with the baseline on the same seeds (`decision.paired`);
the share of the baseline's gap closed only where that gap is established.

Tested in tests/test_ablation.py (rows, one training for shifts sharing train and val,
resume, refusals, the summary against numpy, stats.mean_interval and decision.paired);
the shared-out study in tests/test_ddp.py.
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
from pathmnist.evaluation import decision, metrics, stats
from pathmnist.files import write_json, write_text
from pathmnist.training import ddp, rundir
from pathmnist.training.fit import fit

COLUMNS = [
    "recipe",
    "seed",
    "shift",
    "val_accuracy",
    "test_accuracy",
    "val_macro_auc",
    "test_macro_auc",
    "best_epoch",
    "epochs",  # Epochs run (the budget unless early stopping ended the run).
    "converged",  # decision.converged: True or False.
    "seconds",
    "test_recall",  # Per-class recall on test, space-separated, in label order.
    "val_accuracies",  # One per epoch, space-separated: the curve behind "converged".
    "val_losses",  # One per epoch: what early stopping watched (chapter 12 replays it).
    "test_correct",  # One 0/1 per test image, in file order: for the pooled McNemar test.
]
FLOATS = ("val_accuracy", "test_accuracy", "val_macro_auc", "test_macro_auc", "seconds")
LISTS = ("test_recall", "val_accuracies", "val_losses")
_lower = lambda c: decision.established(c) and c["diff"] < 0  # test established lower


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
            rows = [_typed(r) for r in reader]
        except (ValueError, TypeError, AttributeError) as e:
            raise PathMNISTError(f"{path} holds a value that is not a number ({e}).") from None
    return rows


def _typed(r: dict) -> dict:
    """One results.csv row with numbers as numbers (ValueError on a damaged row)."""
    if r["converged"] not in ("True", "False") or set(r["test_correct"]) - {"0", "1"}:
        raise ValueError(f"row {r['recipe']} seed {r['seed']} is damaged")
    return {
        **r,
        "seed": int(r["seed"]),
        "best_epoch": int(r["best_epoch"]),
        "epochs": int(r["epochs"]),
        "converged": r["converged"] == "True",
        **{c: float(r[c]) for c in FLOATS},
        **{c: [float(v) for v in r[c].split()] for c in LISTS},
    }


def _write_rows(path, rows) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({**r, **{c: " ".join(f"{v:.6f}" for v in r[c]) for c in LISTS}} for r in rows)
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
        "recipes": recipes,
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
            if resume and not _extends(json.loads((out / "study.json").read_text()), study):
                raise PathMNISTError(
                    f"cannot resume the study in {out}: its seeds, data, settings or recipes "
                    "differ from this command's; rerun with the same flags (adding recipes is "
                    "allowed), or pass --overwrite."
                )
            rundir.start(out, resume, overwrite, resume_file="study.json")
            write_json(out / "study.json", study)
            return out, read_rows(out / "results.csv")

        out, rows = ddp.from_main(start)
        quiet = quiet or not ddp.is_main()  # Under torchrun only rank 0 prints.
        done = {(r["recipe"], r["seed"], r["shift"]) for r in rows}
        todo = []  # One training per (group of shifts sharing train and val, recipe, seed).
        for group in _groups(data):
            for name in recipes:
                for seed in seeds:
                    shifts = [s for s in group if (name, seed, s) not in done]
                    if shifts:
                        todo.append((shifts, name, seed))

        def work(job):  # Under torchrun, job i runs on rank i % N, in one process.
            shifts, name, seed = job
            return _one(data, shifts, name, recipes[name], seed, base, out, quiet)

        def record(new_rows):  # Rank 0, in job order.
            rows.extend(new_rows)
            _write_rows(out / "results.csv", rows)

        ddp.map_jobs(work, todo, record)
        return rows


def _extends(stored: dict, study: dict) -> bool:
    """True when `study` is `stored` with recipes added (each old one unchanged): a
    finished study gains a recipe without retraining the others."""
    try:  # TrainConfig fields added since the study was written count at their defaults.
        base = TrainConfig.from_dict(stored.get("base", {})).to_dict()
    except (PathMNISTError, TypeError):
        return False
    old, rest = stored.get("recipes", {}), lambda d: {**d, "recipes": None, "base": None}
    return (
        rest(stored) == rest(study)
        and base == study["base"]
        and all(study["recipes"].get(name) == r for name, r in old.items())
    )


def _groups(data: dict) -> list[list[str]]:
    """Shift names grouped by identical train and val splits (one training serves them)."""
    groups = {}
    for shift, splits in data.items():
        key = tuple(
            (s.images.shape, s.images.tobytes(), s.labels.tobytes())
            for s in (splits["train"], splits["val"])
        )
        groups.setdefault(key, []).append(shift)
    return list(groups.values())


def _one(data, shifts, name, changes, seed, base, out, quiet) -> list[dict]:
    """Train one recipe and seed once for `shifts`; one results row per shift's test."""
    config = dataclasses.replace(base, seed=seed, **changes).validate()
    splits = data[shifts[0]]
    run_dir = out / shifts[0] / name / f"seed={seed}"
    if not quiet:
        print(f"{', '.join(shifts)} / {name} / seed {seed}", flush=True)
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
    val = history.predictor.evaluate(splits["val"])
    val_acc = [r["val_acc"] for r in history.rows]
    common = {
        "recipe": name,
        "seed": seed,
        "val_accuracy": val.accuracy,
        "val_macro_auc": val.macro_auc,
        "best_epoch": history.best_epoch,
        "epochs": len(history.rows),
        "converged": decision.converged(
            val_acc, history.best_epoch, config.epochs, config.step_size, len(splits["val"])
        ),
        "val_accuracies": val_acc,
        "val_losses": [r["val_loss"] for r in history.rows],
    }
    rows = []
    for shift in shifts:
        test = data[shift]["test"]
        ev = history.predictor.evaluate(test)
        predicted, classes = ev.probs.argmax(1), ev.probs.shape[1]
        correct = predicted == ev.labels
        rows.append(
            {
                **common,
                "shift": shift,
                "test_accuracy": ev.accuracy,
                "test_macro_auc": ev.macro_auc,
                "seconds": round(time.perf_counter() - start, 1),
                "test_recall": metrics.recall_per_class(ev.labels, predicted, classes).tolist(),
                "test_correct": "".join("1" if c else "0" for c in correct.tolist()),
            }
        )
    for f in ("last.pt", "best.pt"):  # 25 runs x 2 ResNet-18s would take 4 GB.
        (run_dir / f).unlink(missing_ok=True)
    return rows


def summarize(rows) -> list[dict]:
    """Per (shift, recipe), in first-seen order: n seeds, runs converged, mean val/test
    accuracy and gap (val - test) with 95% t intervals over seeds, mean test macro AUC, and,
    against the same shift's baseline on the same seeds, the paired differences
    (`decision.paired`) of test accuracy, val accuracy and gap. `gap_closed` (the share of
    the baseline's gap removed, with the paired interval scaled by the baseline's mean gap)
    only when the baseline's gap interval excludes 0 and test did not fall; else None."""
    groups = {}
    for r in rows:
        gap = r["val_accuracy"] - r["test_accuracy"]
        groups.setdefault((r["shift"], r["recipe"]), []).append({**r, "gap": gap})
    out = []
    for (shift, recipe), runs in groups.items():
        entry = {"shift": shift, "recipe": recipe, "n": len(runs), "runs": runs}
        entry["converged"] = sum(bool(r["converged"]) for r in runs)
        for name, values in (
            ("val", [r["val_accuracy"] for r in runs]),
            ("test", [r["test_accuracy"] for r in runs]),
            ("gap", [r["gap"] for r in runs]),
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
        entry["vs_baseline"], entry["gap_closed"] = None, None
        if base is None or entry is base:
            continue
        entry["vs_baseline"] = {
            m: decision.paired(entry["runs"], base["runs"], m)
            for m in ("test_accuracy", "val_accuracy", "gap")
        }
        if (
            decision.established({"low": base["gap_low"], "high": base["gap_high"]})
            and base["gap"] > 0
            and not _lower(entry["vs_baseline"]["test_accuracy"])  # Shrunk by falling.
        ):
            g = entry["vs_baseline"]["gap"]  # recipe gap - baseline gap, per seed
            entry["gap_closed"] = {
                "share": -g["diff"] / base["gap"],
                "low": -g["high"] / base["gap"],
                "high": -g["low"] / base["gap"],
            }
    for entry in out:
        del entry["runs"]
    shifts = list(dict.fromkeys(e["shift"] for e in out))
    return sorted(out, key=lambda e: shifts.index(e["shift"]))  # Stable: recipes keep order.


def converged_share(rows) -> float:
    """The share of runs (one per recipe and seed, counted once across shifts) that
    converged by `decision.converged`."""
    runs = {(r["recipe"], r["seed"]): bool(r["converged"]) for r in rows}
    return sum(runs.values()) / len(runs) if runs else float("nan")
