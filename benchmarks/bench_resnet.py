"""Training-step speed of pathmnist.model.resnet.resnet18 against torchvision.models.resnet18.

Both models hold the same weights (ours loads torchvision's state_dict) and run a
forward + cross-entropy + backward step on the same float32 batch (default 128 images,
3x64x64), in one process. The runs are interleaved and their order alternates every
repeat, so the load from other processes falls on both alike; the ratio reported is the
median of the per-repeat ratios (ours / torchvision images per second). The models are
built from the same kernels, so the ratio should be 1 within noise; below 0.98 is a defect.

On the CPU, other processes share the cores, so wall-clock time measures them as much as
us. The script therefore also times each repeat by this process's CPU time and, by
default, runs torch on one thread (`--threads`): with one thread the CPU time is the work
done, with no OpenMP spin-waiting for a descheduled partner thread. On the CPU the
CPU-time ratio decides; on a GPU the wall-clock one does.

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

from pathmnist.model import registry, resnet

MIN_RATIO = 0.98  # Same kernels: a larger gap means our module adds work.


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def step(model, x, y):
    """One forward + backward step; gradients are reset without an optimizer."""
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()


def timed_step(model, x, y, device):
    """Seconds for one step: (wall clock, this process's CPU time)."""
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    step(model, x, y)
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def flops(arch, stem, size):
    """Forward FLOPs of one size x size image (FlopCounterMode: a multiply-add is 2)."""
    model = registry.build(arch, stem=stem).eval()
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
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (0: torch's)")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    ref = torchvision.models.resnet18(num_classes=9).to(device).train()
    ours = resnet.resnet18(num_classes=9).to(device).train()
    ours.load_state_dict(ref.state_dict(), strict=True)
    # The control: a second torchvision model with the same weights. Its ratio to the
    # first shows how far two identical models drift apart by noise alone.
    copy = torchvision.models.resnet18(num_classes=9).to(device).train()
    copy.load_state_dict(ref.state_dict(), strict=True)
    models = {"pathmnist": ours, "torchvision": ref, "torchvision (copy)": copy}
    x = torch.randn(args.batch_size, 3, args.size, args.size, device=device)
    y = torch.randint(0, 9, (args.batch_size,), device=device)
    for model in models.values():
        for _ in range(args.warmup):
            step(model, x, y)

    # Interleave single steps, rotating the order every step, so a slow patch of the
    # machine falls on every model alike; a repeat sums `steps` steps per model.
    names = list(models)
    wall, cpu = {n: [] for n in names}, {n: [] for n in names}
    for r in range(args.repeats):
        seconds = {n: [0.0, 0.0] for n in names}
        for i in range(args.steps):
            k = (r * args.steps + i) % len(names)
            for n in names[k:] + names[:k]:
                w, c = timed_step(models[n], x, y, device)
                seconds[n][0] += w
                seconds[n][1] += c
        for n in names:
            wall[n].append(args.steps * args.batch_size / seconds[n][0])
            cpu[n].append(args.steps * args.batch_size / seconds[n][1])
        now = ", ".join(f"{n} {wall[n][-1]:.1f} (cpu {cpu[n][-1]:.1f})" for n in names)
        print(f"repeat {r + 1}/{args.repeats}, images/s: {now}", flush=True)

    def ratios(speeds, name="pathmnist"):
        return [a / b for a, b in zip(speeds[name], speeds["torchvision"], strict=True)]

    table = {"wall clock": ratios(wall), "process CPU time": ratios(cpu)}
    decisive = "wall clock" if device.type == "cuda" else "process CPU time"
    ratio = statistics.median(table[decisive])
    noise = ratios(wall if device.type == "cuda" else cpu, "torchvision (copy)")

    shape = f"{args.batch_size}x3x{args.size}x{args.size}"
    threads = torch.get_num_threads()
    lines = [
        f"resnet18, 9 classes, forward + cross-entropy + backward on a {shape} float32 batch "
        f"on {device.type} ({threads} torch thread{'s' if threads > 1 else ''}); "
        f"{args.repeats} repeats of {args.steps} steps per model, single steps interleaved, "
        f"after {args.warmup} warm-up steps per model.",
        "",
        "| model | images/s, wall (median) | min | max | images/s per CPU second (median) |",
        "|---|---:|---:|---:|---:|",
    ]
    for n in names:
        lines.append(
            f"| {n} | {statistics.median(wall[n]):.1f} | {min(wall[n]):.1f} | "
            f"{max(wall[n]):.1f} | {statistics.median(cpu[n]):.1f} |"
        )
    lines += ["", "| ratio to torchvision | by | median | range |", "|---|---|---:|---:|"]
    for by, rs in table.items():
        lines.append(
            f"| pathmnist | {by} | {statistics.median(rs):.3f} | {min(rs):.3f}-{max(rs):.3f} |"
        )
    lines.append(
        f"| torchvision (copy): the noise floor | {decisive} | {statistics.median(noise):.3f} "
        f"| {min(noise):.3f}-{max(noise):.3f} |"
    )
    verdict = "ok" if ratio >= MIN_RATIO else f"BELOW {MIN_RATIO}: a defect"
    lines += [
        "",
        f"**Ratio pathmnist / torchvision: {ratio:.3f}** (median of per-repeat ratios by "
        f"{decisive}; {verdict}).",
        "",
        "Forward FLOPs of one 64x64 image (torch.utils.flop_counter.FlopCounterMode; "
        "a multiply-add counts 2):",
        "",
        "| arch | stem imagenet | stem small | small / imagenet |",
        "|---|---:|---:|---:|",
    ]
    for arch in registry.BUILDERS:
        big, small = flops(arch, "imagenet", 64), flops(arch, "small", 64)
        lines.append(f"| {arch} | {big / 1e9:.3f} G | {small / 1e9:.2f} G | {small / big:.1f}x |")
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("resnet", "ResNet-18 training step: pathmnist vs torchvision", body)
    return 0 if ratio >= MIN_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
