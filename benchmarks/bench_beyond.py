"""What chapter 10's additions cost per epoch: DenseNet-121 against ResNet-18, and RandAugment
against the flips, at 64x64, side by side in one process.

Networks: one training step (forward, cross-entropy, backward, Adam) on the same float32
batch for resnet18, densenet121 and densenet121 with memory_efficient=True (checkpointed),
interleaved, the order rotating every repeat. Augmentations: the train transform
`build_transforms` makes for `("flips",)` and for `("flips", "randaugment")` (N = 2, M = 9)
on the same uint8 batch. Each figure is the median over repeats of seconds per batch,
scaled to one epoch of the synthetic training split (2,400 images), and its ratio to the
baseline (resnet18; flips). As in bench_resnet.py, torch runs on one thread by default and
this process's CPU time decides (other jobs share the cores; wall clock is printed too).
Also counts the FLOPs of one 64x64 image (torch.utils.flop_counter) and the parameters.

    python benchmarks/bench_beyond.py [--batch-size 64] [--repeats 3] [--steps 2] [--quick]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))  # For _results, from any cwd.
from _results import cpu_flags, write_section

from pathmnist.augment.transforms import build_transforms
from pathmnist.model import registry

EPOCH_IMAGES = 2400  # The synthetic training split (pathmnist.data.synthetic.DEFAULT_SIZES).
NETWORKS = {
    "resnet18": lambda: registry.build("resnet18"),
    "densenet121": lambda: registry.build("densenet121"),
    "densenet121, memory_efficient": lambda: registry.build("densenet121", memory_efficient=True),
}
AUGMENTS = {"flips": ("flips",), "flips+randaugment": ("flips", "randaugment")}


def timed(fn, steps):
    """Median (wall, CPU) seconds of `steps` calls of fn, after one warm-up call."""
    fn()
    walls, cpus = [], []
    for _ in range(steps):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def interleave(makers, steps, repeats):
    """{name: (wall, cpu)} medians over repeats, the order rotating every repeat."""
    names, out = list(makers), {n: ([], []) for n in makers}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            wall, cpu = timed(makers[name], steps)
            out[name][0].append(wall)
            out[name][1].append(cpu)
    return {n: (statistics.median(w), statistics.median(c)) for n, (w, c) in out.items()}


def train_step(model, optimizer, x, y):
    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    return step


def flops(model, size):
    x = torch.zeros(1, 3, size, size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(x)
    return counter.get_total_flops()


def table(results, baseline, batch, per="batch"):
    rows = ["| what | s/batch (CPU) | s/epoch (CPU) | s/batch (wall) | cost vs " + baseline + " |"]
    rows.append("|---|---:|---:|---:|---:|")
    base = results[baseline][1]
    for name, (wall, cpu) in results.items():
        epoch = cpu * EPOCH_IMAGES / batch
        rows.append(f"| {name} | {cpu:.4g} | {epoch:.4g} | {wall:.4g} | {cpu / base:.2f}x |")
    return "\n".join(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs")
    p.add_argument("--results", type=Path, default=None, help="file to write (RESULTS.md)")
    a = p.parse_args(argv)
    if a.quick:
        a.batch_size, a.repeats, a.steps = 4, 1, 1
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    size, b = 64, a.batch_size
    x = torch.rand(b, 3, size, size)
    y = torch.randint(0, 9, (b,))

    models = {n: make() for n, make in NETWORKS.items()}
    steps = {
        n: train_step(m.train(), torch.optim.Adam(m.parameters(), 1e-3), x, y)
        for n, m in models.items()
    }
    nets = interleave(steps, a.steps, a.repeats)

    images = torch.randint(0, 256, (b, size, size, 3), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    tfs = {n: build_transforms((0.5,) * 3, (0.25,) * 3, aug)[0] for n, aug in AUGMENTS.items()}
    augs = interleave(
        {n: (lambda t=t: t(images, g)) for n, t in tfs.items()}, a.steps * 5, a.repeats
    )

    counts = [
        f"- {n}: {sum(p.numel() for p in m.parameters()):,} parameters, "
        f"{flops(m, size) / 1e9:.3f} GFLOPs forward per 64x64 image"
        for n, m in models.items()
        if "memory" not in n
    ]
    flags = cpu_flags()
    body = "\n".join(
        [
            f"- command: `python benchmarks/bench_beyond.py --batch-size {b} --repeats "
            f"{a.repeats} --steps {a.steps} --threads {a.threads}`"
            + (" (--quick: proves the script runs, measures nothing)" if a.quick else ""),
            f"- CPU flags: avx512_bf16 {'yes' if 'avx512_bf16' in flags else 'no'}, "
            f"amx_bf16 {'yes' if 'amx_bf16' in flags else 'no'}; fp32; batch {b} of "
            f"{size}x{size}; s/epoch = CPU s/batch x {EPOCH_IMAGES} / {b}",
            *counts,
            "",
            "Training step (forward, backward, Adam):",
            "",
            table(nets, "resnet18", b),
            "",
            "Train transform of a uint8 batch (augmentation, cast, normalisation):",
            "",
            table(augs, "flips", b),
        ]
    )
    print(body)
    kw = {"path": a.results} if a.results else {}
    write_section(
        "beyond", "Chapter 10's additions: DenseNet-121 and RandAugment (cpu)", body, **kw
    )


if __name__ == "__main__":
    main()
