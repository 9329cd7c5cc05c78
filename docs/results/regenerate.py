"""Regenerate the run files the course quotes: every number in README.md and docs/ that
comes from a longer run is read from the folders next to this script.

    python docs/results/regenerate.py             # every lesson, in order (about 1.5 h, 2 cores)
    python docs/results/regenerate.py lesson4     # one of them

Each lesson runs its example with the flags below into runs/<name>/ (resuming if it was
interrupted), then copies the small files (config, history, metrics, results, reports,
figures; never checkpoints) to docs/results/<name>/ with run.json: the command, the wall
time, the date, the CPU and the torch version. tests/test_results.py checks that the
course quotes these files correctly.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import _results  # noqa: E402 - the benchmarks' machine facts, shared.

KEEP = (
    "config.json",
    "history.csv",
    "metrics.json",
    "report.md",
    "results.csv",
    "search.json",
    "study.json",
    "best_config.json",
)
S = ["--dataset", "synthetic"]
LESSONS = {  # name -> the example and its flags
    "lesson1": ["examples/01_baseline.py", *S],
    "lesson2": ["examples/02_tuning.py", *S, "--repeats", "3"],
    "lesson2_halving": [
        "examples/02_tuning.py",
        *S,
        "--strategy",
        "halving",
        "--eta",
        "3",
        "--epochs",
        "1",
        "--max-epochs",
        "3",
        "--repeats",
        "3",
    ],
    "lesson3": [
        "examples/03_final_evaluation.py",
        *S,
        "--config",  # Lesson 2's recorded choice (its search is not rerun with lesson 3).
        "docs/results/lesson2/best_config.json",
        "--baseline",
        "runs/lesson1/best.pt",
    ],
    "lesson5": ["examples/05_inside_the_model.py", *S, "--run", "runs/lesson3"],
    # Lesson 4 at 28x28 (a fifth of 64x64's compute), 12 epochs, StepLR(5), early
    # stopping off: every recipe trains through both decays, 5 seeds each.
    "lesson4": ["examples/04_stain_shift.py", *S, "--seeds", "5", "--size", "28"],
    # The jitter-strength sweep, read on validation (the stain set; flips at sigma 0 is
    # lesson4's own flips runs: the same seeds, data and settings).
    "lesson4_sweep": [
        "examples/04_stain_shift.py",
        *S,
        "--seeds",
        "5",
        "--size",
        "28",
        "--shifts",
        "stain",
        "--recipes",
        "flips+hed-faint,flips+he-faint,flips+he-light,flips+hed-strong,flips+he-strong",
    ],
    "lesson5_losses": [
        "examples/04_stain_shift.py",
        *S,
        "--seeds",
        "5",
        "--size",
        "28",
        "--shifts",
        "stain",
        "--recipes",
        "baseline,weighted,focal",
    ],
}


def cpu_flags() -> list[str]:
    """The CPU flags that decide the speed of this course's kernels."""
    return sorted(_results.cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})


def run(name: str) -> None:
    import torch

    args = LESSONS[name]
    out = ROOT / "runs" / name
    flags = ["--out", str(out.relative_to(ROOT)), "--quiet"]  # Relative: no local path in files.
    if name == "lesson5":  # It writes into lesson 3's folder: keep that one clean.
        flags = []
    elif (
        (out / "last.pt").exists()
        or (out / "search.json").exists()
        or (out / "study.json").exists()
    ):
        flags.append("--resume")
    elif out.exists():
        flags.append("--overwrite")
    command = [sys.executable, *args, *flags]
    print(" ".join(command[1:]), flush=True)
    start = time.perf_counter()
    # One thread per process: two studies share two cores without oversubscribing them.
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    subprocess.run(command, cwd=ROOT, check=True, env=env)
    seconds = time.perf_counter() - start
    source = ROOT / "runs" / ("lesson3" if name == "lesson5" else name)
    target = HERE / name
    shutil.rmtree(target, ignore_errors=True)
    (target / "figures").mkdir(parents=True)
    # Lesson 5 writes into lesson 3's folder: keep only what it wrote (its metrics.json
    # entries sit beside lesson 3's), so no file of the tuned run's training sits there.
    keep = ("metrics.json",) if name == "lesson5" else KEEP
    pngs = ("reliability.png", "gradcam.png") if name == "lesson5" else None
    for f in keep:
        if (source / f).exists():
            shutil.copy2(source / f, target / f)
    for png in (source / "figures").glob("*.png"):
        if pngs is None or png.name in pngs:
            shutil.copy2(png, target / "figures" / png.name)
    info = {
        "command": "python " + " ".join(args),
        "seconds": round(seconds, 1),
        "date": date.today().isoformat(),
        "cpu": _results.cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": len(os.sched_getaffinity(0)),
        "threads": env["OMP_NUM_THREADS"],
        "torch": torch.__version__,
    }
    (target / "run.json").write_text(json.dumps(info, indent=2) + "\n")


if __name__ == "__main__":
    for name in sys.argv[1:] or list(LESSONS):
        if name not in LESSONS:
            sys.exit(f"error: unknown lesson {name!r}; choose from {', '.join(LESSONS)}.")
        run(name)
