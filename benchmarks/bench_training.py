"""One training epoch of ResNet-18: precision "auto" against plain fp32, same data and seed.

Data: the synthetic PathMNIST (pathmnist.synthetic.generate), 1,024 training and 256
validation images at 64x64, batch 128, Adam 1e-3 (the seed's baseline). Each variant
starts from the same initial weights (torch.manual_seed before building the model), trains
one epoch with `training.train_one_epoch` and is scored with `training.evaluate` on the
validation images. The variants run interleaved, in a rotating order, and the table
reports median seconds per epoch and the validation accuracy after the epoch.

"auto" picks bf16 autocast with channels_last only where the hardware computes bf16
natively (CUDA with bf16, or a CPU with AVX512-BF16 / AMX); elsewhere it *is* fp32, and
the auto/fp32 ratio only shows the noise of the measurement. For information, explicit
"bf16" is measured too; on a CPU without native bf16 autocast emulates it, so it runs
on `--bf16-batches` batches only (reported per batch) instead of a whole epoch.

Run: python benchmarks/bench_training.py [--train 1024] [--val 256] [--repeats 3]
"""

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # For _results, from any cwd.
from _results import write_section

from pathmnist import synthetic, training
from pathmnist.data import CLASS_NAMES, BatchLoader, ImageSet
from pathmnist.transforms import build_transforms, channel_stats


class FirstBatches:
    """The first `n` batches of a loader (for the emulated-bf16 measurement)."""

    def __init__(self, loader, n):
        self.loader, self.n = loader, n

    def __len__(self):
        return min(self.n, len(self.loader))

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if i == self.n:
                return
            yield batch


def run(variant, precision, train, val, args, device):
    """Train one (possibly partial) epoch from the seeded init; return (s, batches, acc)."""
    train_tf, eval_tf = build_transforms(*channel_stats(train))
    loader = BatchLoader(train, args.batch_size, seed=0, transform=train_tf, device=device)
    loader.set_epoch(1)
    if variant == "bf16" and precision == "bf16" and not args.native_bf16:
        loader = FirstBatches(loader, args.bf16_batches)
    torch.manual_seed(0)  # The same initial weights for every variant.
    config = training.TrainConfig(batch_size=args.batch_size)
    model = training.build_model(config, train.num_classes).to(device)
    if precision == "bf16":
        model = model.to(memory_format=torch.channels_last)
    optimizer = training.build_optimizer(config, model)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    training.train_one_epoch(model, loader, optimizer, precision)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    full = len(loader) == len(BatchLoader(train, args.batch_size))
    acc = None
    if full:
        val_loader = BatchLoader(
            val, training.EVAL_BATCH_SIZE, shuffle=False, transform=eval_tf, device=device
        )
        acc = training.evaluate(model, val_loader, precision).accuracy
    return seconds, len(loader), acc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=1024)
    parser.add_argument("--val", type=int, default=256)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bf16-batches", type=int, default=2)
    parser.add_argument("--device", default="auto", choices=training.DEVICES)
    parser.add_argument("--no-write", action="store_true", help="print only, keep RESULTS.md")
    args = parser.parse_args(argv)

    device = training.resolve_device(args.device)
    auto = training.resolve_precision("auto", device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # bf16 without native support.
        training.resolve_precision("bf16", device)
    args.native_bf16 = auto == "bf16"
    arrays = synthetic.generate(args.train, args.val, 1, size=args.size, seed=0)
    train, val = (
        ImageSet(arrays[f"{s}_images"], arrays[f"{s}_labels"].ravel(), CLASS_NAMES)
        for s in ("train", "val")
    )
    variants = {"fp32": "fp32", "auto": auto, "bf16": "bf16"}
    times = {v: [] for v in variants}
    per_batch = {v: [] for v in variants}
    accs = {v: None for v in variants}
    order = list(variants)
    for r in range(args.repeats):
        for v in order[r % 3 :] + order[: r % 3]:  # Rotate: nobody always runs first.
            seconds, batches, acc = run(v, variants[v], train, val, args, device)
            times[v].append(seconds)
            per_batch[v].append(seconds / batches)
            accs[v] = acc if acc is not None else accs[v]
            shown = f"{acc:.4f}" if acc is not None else "-"
            print(
                f"repeat {r + 1}: {v:5s} ({variants[v]}) {seconds:7.2f} s, {batches} "
                f"batches, val acc {shown}",
                flush=True,
            )

    base = statistics.median(per_batch["fp32"])
    n_batches = len(BatchLoader(train, args.batch_size))
    lines = [
        f"One epoch of ResNet-18 on {args.train:,} synthetic {args.size}x{args.size} images "
        f"({n_batches} batches of {args.batch_size}, Adam 1e-3, seed 0), validation on "
        f"{args.val}; device {device.type}; median of {args.repeats} interleaved repeats.",
        "",
        "| variant | computes in | s per training epoch | s per batch | ratio to fp32 | val acc |",
        "|---|---|---|---|---|---|",
    ]
    for v, precision in variants.items():
        partial = accs[v] is None
        epoch = "-" if partial else f"{statistics.median(times[v]):.2f}"
        acc = "- (partial epoch)" if partial else f"{accs[v]:.4f}"
        ratio = statistics.median(per_batch[v]) / base
        lines.append(
            f"| {v} | {precision} | {epoch} | {statistics.median(per_batch[v]):.3f} | "
            f"{ratio:.2f}x | {acc} |"
        )
    note = (
        f"On this machine `auto` resolves to {auto}"
        + (
            ""
            if args.native_bf16
            else " (no native bf16: no AVX512-BF16/AMX, or a GPU without bf16), so auto and fp32 "
            "run the same code and their ratio is measurement noise. Explicit bf16 is shown "
            f"for information only: autocast emulates it here, measured on the first "
            f"{args.bf16_batches} batches of an epoch"
        )
        + "."
    )
    lines += ["", note]
    body = "\n".join(lines)
    print()
    print(body)
    if not args.no_write:
        write_section("training", "Training epoch: precision auto vs fp32", body)


if __name__ == "__main__":
    main()
