"""bf16 against fp32 on the same seed: does mixed precision change what a run learns?

    python benchmarks/precision.py            # 3 epochs of the baseline on the lab bench

Trains the seed's baseline twice from the same seed on the synthetic lab bench (2,400 /
800 images at 64x64), once with precision fp32 and once with bf16 (autocast for the
network, the classifier and the loss in float32), and writes the final validation
accuracy and macro AUC of each, their differences, the epoch times and the number of tied
validation probabilities into the "precision" section of benchmarks/RESULTS.md. The issue's
target: accuracy within 1 point, macro AUC within 0.002. On a CPU without native bf16,
bf16 is emulated (correct, slow).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _results import machine, write_section

from pathmnist.config import TrainConfig
from pathmnist.data import dataset as data
from pathmnist.data import synthetic
from pathmnist.training.fit import fit


def ties(probs) -> int:
    """Equal probabilities within each class column, summed over the classes."""
    return int(sum(len(col) - len(np.unique(col)) for col in np.asarray(probs).T))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--data-root", type=Path, default=data.default_root())
    args = p.parse_args(argv)
    path = synthetic.ensure_synthetic(args.data_root)
    train, val = (data.load_split(s, data_file=path) for s in ("train", "val"))
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "bf16"):
            config = TrainConfig(epochs=args.epochs, precision=precision, patience=args.epochs)
            start = time.perf_counter()
            history = fit(config, train, val, Path(tmp) / precision, quiet=True)
            seconds = time.perf_counter() - start
            ev = history.predictor.evaluate(val)
            rows[precision] = (ev.accuracy, ev.macro_auc, ties(ev.probs), seconds)
            print(precision, rows[precision], flush=True)
    (a32, u32, t32, s32), (a16, u16, t16, s16) = rows["fp32"], rows["bf16"]
    body = "\n".join(
        [
            f"- {machine()}; the seed's baseline for {args.epochs} epochs, seed 0, "
            f"{len(train):,} / {len(val):,} synthetic images at 64x64",
            f"- command: `python benchmarks/precision.py --epochs {args.epochs}`",
            "",
            "| precision | val accuracy | val macro AUC | tied val probabilities | seconds |",
            "|---|---:|---:|---:|---:|",
            f"| fp32 | {a32:.4f} | {u32:.4f} | {t32} | {s32:.0f} |",
            f"| bf16 | {a16:.4f} | {u16:.4f} | {t16} | {s16:.0f} |",
            "",
            f"bf16 - fp32: accuracy {a16 - a32:+.4f} (target within 0.01), macro AUC "
            f"{u16 - u32:+.4f} (target within 0.002). One run of each: at 3 epochs the "
            "validation accuracy of one recipe swings by several points from epoch to epoch "
            "(lesson 1's history), so one pair cannot separate precision from that noise. The "
            "seconds are one run each, one after the other, on shared cores: see the speed "
            "table for ratios.",
        ]
    )
    write_section("precision", "bf16 vs fp32 on the same seed", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
