"""The README's quotes of the lab-bench runs, rendered from the run files next to this
script, never typed: README.md holds regions

    <!-- results:NAME -->
    ...
    <!-- /results -->

whose text `render(NAME)` produces. `python docs/results/quotes.py` rewrites them after
`regenerate.py`; tests/test_results.py fails when a region differs from its rendering.
"""

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from pathmnist.report import tables, verdicts  # noqa: E402
from pathmnist.studies import ablation, folder, grid  # noqa: E402
from pathmnist.training.history import History, best_row, format_epoch  # noqa: E402

REGION = re.compile(r"(<!-- results:(\w+) -->\n)(.*?)(<!-- /results -->)", re.S)


def _json(name, file):
    return json.loads((HERE / name / file).read_text())


def _machine(run) -> str:
    flags = ", ".join(run["cpu_flags"]) or "no AVX flags read"
    return f"{run['cores']} cores of an {run['cpu']} ({flags}), {run['date']}"


def lesson1() -> str:
    history = History.from_csv(HERE / "lesson1" / "history.csv")
    config = _json("lesson1", "config.json")["config"]
    m, run = _json("lesson1", "metrics.json"), _json("lesson1", "run.json")
    lines = []
    for k, row in enumerate(history.rows):
        best = best_row(history.rows[: k + 1], config["monitor"])
        lines.append(format_epoch(row, config["epochs"], best is row))
    v = m["val"]
    lines.append(f"best epoch {history.best_epoch} of {len(history.rows)}")
    lines.append(
        f"val accuracy {v['accuracy']:.4f} [{v['accuracy_ci95'][0]:.4f}, "
        f"{v['accuracy_ci95'][1]:.4f}], macro AUC {v['macro_auc']:.4f}"
    )
    seconds = sum(r["seconds"] for r in history.rows)
    return (
        "```text\n" + "\n".join(lines) + "\n```\n\n"
        f"Training and validation took {seconds / 60:.1f} min in all (the sum of "
        f"`history.csv`'s seconds) on {_machine(run)}, precision "
        f"{history.rows[0]['precision']}, {run['threads']} thread(s).\n"
    )


def lesson2() -> str:
    rows = folder.read_results(HERE / "lesson2" / "results.csv")
    best = grid.summarize(rows)[0]
    return (
        f"Lesson 2 (3 seeds per trial, {len(rows)} runs) chose "
        f"`{tables.trial_label(best['params'])}` after 3 epochs per trial: mean val "
        f"accuracy {best['val_acc']:.4f} "
        f"[{best['val_acc_low']:.4f}, {best['val_acc_high']:.4f}].\n"
    )


def lesson3() -> str:
    m = _json("lesson3", "metrics.json")
    out = []
    if "val_tuned_vs_baseline" in m:
        out.append(m["val_tuned_vs_baseline"]["sentence"] + f" Carried: the {m['carried']} model.")
    for s in ("val", "test"):
        e = m[s]
        out.append(
            f"- {s}: accuracy {e['accuracy']:.4f} [{e['accuracy_ci95'][0]:.4f}, "
            f"{e['accuracy_ci95'][1]:.4f}], macro AUC {e['macro_auc']:.4f}"
        )
    return "\n".join(out) + "\n"


def lesson4() -> str:
    rows = ablation.read_rows(HERE / "lesson4" / "results.csv")
    summary = ablation.summarize(rows)
    study = _json("lesson4", "study.json")
    recipes = list(dict.fromkeys(r["recipe"] for r in rows))
    seeds, size = len(study["seeds"]), study["key"]["size"]
    return (
        f"{len(recipes)} recipes x {seeds} seeds, {size}x{size} synthetic images, "
        f"{study['base']['epochs']} epochs with StepLR({study['base']['step_size']}), tested on "
        f"a stain-shifted and a scanner-shifted split. {verdicts.headline(summary, rows)} "
        f"{verdicts.convergence(rows)}\n\n" + tables.format_ablation(summary) + "\n"
    )


RENDER = {"lesson1": lesson1, "lesson2": lesson2, "lesson3": lesson3, "lesson4": lesson4}


def regions(text: str) -> dict[str, str]:
    """{name: text} of the README's regions."""
    return {m.group(2): m.group(3) for m in REGION.finditer(text)}


def update(path) -> None:
    path = Path(path)
    text = REGION.sub(lambda m: m.group(1) + RENDER[m.group(2)]() + m.group(4), path.read_text())
    path.write_text(text)


if __name__ == "__main__":
    update(ROOT / "README.md")
