"""Training-step speed of pathmnist.resnet.resnet18 against torchvision.models.resnet18.

Both models hold the same weights (ours loads torchvision's state_dict) and run a
forward + cross-entropy + backward step on the same float32 batch (default 128 images,
3x64x64), in one process. The runs are interleaved and their order alternates every
repeat, so the load from other processes falls on both alike; the ratio reported is the
median of the per-repeat ratios (ours / torchvision images per second). The models are
built from the same kernels, so the ratio should be 1 within noise; below 0.98 is a defect.

Also counts the FLOPs of one 64x64 image through both stems with
torch.utils.flop_counter.FlopCounterMode (convolutions and matmuls; a multiply-add is 2).

    python benchmarks/bench_resnet.py [--batch-size 128] [--repeats 7] [--steps 3]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))  # For _results, from any cwd.
from _results import write_section

from pathmnist import resnet

MIN_RATIO = 0.98  # Same kernels: a larger gap means our module adds work.


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def step(model, x, y):
    """One forward + backward step; gradients are reset without an optimizer."""
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()


def timed(model, x, y, steps, device):
    """Images per second over `steps` steps."""
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step(model, x, y)
    sync(device)
    return steps * x.shape[0] / (time.perf_counter() - t)


def flops(arch, stem, size):
    """Forward FLOPs of one size x size image (FlopCounterMode: a multiply-add is 2)."""
    model = resnet.build(arch, stem=stem).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    return counter.get_total_flops()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=3, help="steps per timed repeat")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args(argv)
    device = torch.device(args.device)

    torch.manual_seed(0)
    ref = torchvision.models.resnet18(num_classes=9).to(device).train()
    ours = resnet.resnet18(num_classes=9).to(device).train()
    ours.load_state_dict(ref.state_dict(), strict=True)
    models = {"pathmnist": ours, "torchvision": ref}
    x = torch.randn(args.batch_size, 3, args.size, args.size, device=device)
    y = torch.randint(0, 9, (args.batch_size,), device=device)
    for model in models.values():
        for _ in range(args.warmup):
            step(model, x, y)

    speeds = {name: [] for name in models}
    for r in range(args.repeats):
        # Alternate which model goes first, so a slow patch hits both orders equally.
        for name in list(models)[:: 1 if r % 2 == 0 else -1]:
            speeds[name].append(timed(models[name], x, y, args.steps, device))
        print(
            f"repeat {r + 1}/{args.repeats}: "
            + ", ".join(f"{n} {s[-1]:.1f}" for n, s in speeds.items())
        )
    ratios = [a / b for a, b in zip(speeds["pathmnist"], speeds["torchvision"], strict=True)]
    ratio = statistics.median(ratios)

    shape = f"{args.batch_size}x3x{args.size}x{args.size}"
    lines = [
        f"resnet18, 9 classes, forward + cross-entropy + backward on a {shape} float32 batch "
        f"on {device.type}; {args.repeats} interleaved repeats of {args.steps} steps after "
        f"{args.warmup} warm-up steps, medians.",
        "",
        "| model | images/s (median) | min | max |",
        "|---|---:|---:|---:|",
    ]
    for name, s in speeds.items():
        lines.append(f"| {name} | {statistics.median(s):.1f} | {min(s):.1f} | {max(s):.1f} |")
    verdict = "ok" if ratio >= MIN_RATIO else f"BELOW {MIN_RATIO}: a defect"
    lines += [
        "",
        f"**Ratio pathmnist / torchvision: {ratio:.3f}** (median of per-repeat ratios, "
        f"range {min(ratios):.3f}-{max(ratios):.3f}; {verdict}).",
        "",
        "Forward FLOPs of one 64x64 image (torch.utils.flop_counter.FlopCounterMode; "
        "a multiply-add counts 2):",
        "",
        "| arch | stem imagenet | stem small | small / imagenet |",
        "|---|---:|---:|---:|",
    ]
    for arch in resnet.ARCHS:
        big, small = flops(arch, "imagenet", 64), flops(arch, "small", 64)
        lines.append(f"| {arch} | {big / 1e9:.3f} G | {small / 1e9:.2f} G | {small / big:.1f}x |")
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("resnet", "ResNet-18 training step: pathmnist vs torchvision", body)
    return 0 if ratio >= MIN_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
