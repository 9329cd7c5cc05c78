"""One process against torchrun's two on the CPU: the same run, its numbers and its time.

Runs examples/01_baseline.py on the synthetic set (28x28, 2 epochs, fp32, seed 0, global
batch 128) three ways, one after another on the same machine:

- `one`: one process, one thread;
- `two`: `torchrun --standalone --nproc-per-node 2`, one thread per process;
- `one_2threads`: one process, two threads (the same two cores as `two`, used by torch's
  thread pool instead of by two processes; its sums are added in another order, which is
  the control for how far float32 rounding alone moves a run).

Each run's history.csv, metrics.json and config.json go to docs/results/ddp/<name>/ with
a run.json (command, seconds, CPU, flags, date, torch, load average), which chapter 14
reads; the section `ddp-cpu` of benchmarks/RESULTS.md gets the table.

    python benchmarks/ddp.py            # about 3 minutes on 2 cores
    python benchmarks/ddp.py --quick    # a tiny synthetic set, 1 epoch: checks the script
"""

import argparse
import csv
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _results  # noqa: E402

BASELINE = "examples/01_baseline.py"
TORCHRUN = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
RUNS = {  # name -> (launcher arguments after python, OMP threads per process)
    "one": ([], 1),
    "two": (TORCHRUN, 1),
    "one_2threads": ([], 2),
}
KEEP = ("history.csv", "metrics.json", "config.json")
FLAGS = {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}  # The flags that decide our kernels.


def _history(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run_all(flags, work: Path, results: Path) -> dict:
    """Run each configuration into work/<name>, copy its files to results/<name>."""
    done = {}
    for name, (launch, threads) in RUNS.items():
        out = work / name
        cmd = [sys.executable, *launch, BASELINE, *flags, "--out", str(out), "--quiet"]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
        load = os.getloadavg()[0]
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        target = results / name
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for f in KEEP:
            shutil.copy(out / f, target / f)
        launcher = "torchrun --standalone --nproc-per-node 2" if launch else "python"
        record = {
            "command": f"OMP_NUM_THREADS={threads} {launcher} {BASELINE} {' '.join(flags)} --quiet",
            "seconds": round(seconds, 1),
            "date": datetime.date.today().isoformat(),
            "cpu": _results.cpu_model(),
            "cpu_flags": sorted(_results.cpu_flags() & FLAGS),
            "cores": _results.cores(),
            "threads_per_process": threads,
            "load_average_before": round(load, 2),
            "shared_machine": True,
            "torch": __import__("torch").__version__,
        }
        (target / "run.json").write_text(json.dumps(record, indent=2) + "\n")
        done[name] = record
    return done


def table(results: Path) -> str:
    """The RESULTS.md section, from the run files: time per configuration, its ratio to
    `one`, and the distance of its losses from `one`'s."""
    done = {n: json.loads((results / n / "run.json").read_text()) for n in RUNS}
    one = _history(results / "one" / "history.csv")
    base = sum(float(r["seconds"]) for r in one) / len(one)
    lines = [
        "| run | wall seconds | mean s/epoch | speedup vs one (s/epoch) | last val acc | "
        "max rel. diff of losses vs one |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    speed, diffs = {}, {}
    for name, record in done.items():
        rows = _history(results / name / "history.csv")
        per_epoch = sum(float(r["seconds"]) for r in rows) / len(rows)
        speed[name] = base / per_epoch
        diffs[name] = max(
            abs(float(b[c]) - float(a[c])) / abs(float(a[c]))
            for a, b in zip(one, rows, strict=True)
            for c in ("train_loss", "val_loss")
        )
        lines.append(
            f"| {name} | {record['seconds']:.1f} | {per_epoch:.2f} | {speed[name]:.2f}x | "
            f"{float(rows[-1]['val_acc']):.4f} | {diffs[name]:.1e} |"
        )
    first = done["one"]
    return "\n".join(
        [
            f"- date: {first['date']}; CPU: {first['cpu']}, {first['cores']} cores (load "
            f"average {first['load_average_before']} before the first run); "
            f"flags: {', '.join(first['cpu_flags'])}",
            "- command: `python benchmarks/ddp.py` (each run's own command in "
            "docs/results/ddp/<run>/run.json)",
            "",
            *lines,
            "",
            "- Wall seconds include starting the processes and reading the data; s/epoch is "
            "history.csv's `seconds` column. One run of each, one after another.",
            f"- What it shows: on these {first['cores']} cores, two processes of one thread "
            f"ran an epoch at {speed['two']:.2f}x the speed of one process of one thread, and "
            f"one process of two threads at {speed['one_2threads']:.2f}x. Both use the same "
            "cores; torch's thread pool splits each operation between them, while two "
            "processes each run the whole model on half the batch and all-reduce the "
            "gradients at every step. Data parallelism pays when each process brings a "
            "device of its own.",
            f"- The losses of `two` differ from `one`'s by up to {diffs['two']:.1e} (relative), "
            f"those of `one_2threads` by up to {diffs['one_2threads']:.1e}: float32 sums "
            "added in another order, amplified by training (Adam, max-pooling), not a "
            "different computation (chapter 14; tests/test_ddp.py checks the steps).",
        ]
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny data, 1 epoch; results to a tmp dir")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        flags = ["--dataset", "synthetic", "--size", "28", "--epochs", "2"]
        flags += ["--device", "cpu", "--precision", "fp32", "--seed", "0"]
        results = ROOT / "docs" / "results" / "ddp"
        if args.quick:
            flags = [*flags[:4], "--epochs", "1", "--subset", "0.05", *flags[6:]]
            results = tmp / "results"
        run_all(flags, tmp / "work", results)
        body = table(results)
        print(body)
        if not args.quick:
            _results.write_section(
                "ddp-cpu", "One process vs torchrun's two (cpu)", body, stamp=False
            )


if __name__ == "__main__":
    main()
