"""Speed, side by side: this course's pipeline against the seed-style reference.

Every figure is a ratio of two measurements taken in one run, on the same data and
machine: ours (pathmnist's BatchLoader, batched transforms, from-scratch ResNet-18 and
`fit`) against `seed_reference` (medmnist's PIL dataset, torchvision's ToTensor
and Normalize, a DataLoader, torchvision's ResNet-18 in fp32). Each repeat runs ours and
the reference back to back, and the order flips every repeat (ours, reference, reference,
ours, ...) so that a drift in the machine's load falls on both alike; the table holds
medians. The rows:

* input pipeline: one epoch of batches, from uint8 arrays to normalised device tensors;
* training step: `loop.train_one_epoch` against the seed's step, on the same images
  already on the device (forward, loss, backward, optimizer, and each loop's bookkeeping);
* an epoch of `fit` (train + validation + checkpoints, setup included: the whole call
  divided by its epochs), with precision "auto" and with fp32, against the seed's epoch
  (`seed_reference.seed_epoch`, likewise);
* evaluation: `loop.evaluate` against the seed's validation pass;
* macro AUC: `metrics.macro_auc` against sklearn's `roc_auc_score(multi_class="ovr")`;
* with --compile: an epoch of `fit(compile=True)` after compiling, against eager `fit`.

A second table splits each `fit` call into forward/backward/optimizer time, measured
inside `fit` by its opt-in `loop.Timers` (the "compute" sections: zero_grad, forward,
loss, backward and the optimizer step of every training batch, and the forward of every
validation batch), and everything else (input pipeline, transforms, metrics, checkpoints,
setup), as a share of the whole call. Target: at most 10%.

On CUDA the "fp32" rows are TF32 convolutions on an Ampere or newer GPU
(`device.configure_backends` sets cudnn.allow_tf32; matrix products stay float32), and
the table says so. The seed-style reference runs as many epochs as it needs for a stable
per-epoch figure (`--ref-epochs`, at most; it stops once two epochs agree within 5%).

    python benchmarks/run.py [--quick] [--device auto|cpu|cuda] [--train N] [--val N]
        [--size S] [--batch-size B] [--repeats R] [--epochs E] [--ref-epochs E]
        [--step-batches K] [--auc-n N] [--compile] [--threads T] [--out FILE]

--quick is a tiny run that proves the script works (CI runs it), not how fast anything is.
"""

import argparse
import itertools
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch.utils.data import default_collate

sys.path.insert(0, str(Path(__file__).resolve().parent))  # For the modules beside it.
import seed_reference as ref
from _results import RESULTS, cores, cpu_flags, cpu_model, write_section

from pathmnist.augment.transforms import build_transforms, channel_stats
from pathmnist.config import TrainConfig
from pathmnist.data import synthetic
from pathmnist.data.dataset import CLASS_NAMES, ImageSet
from pathmnist.data.loader import BatchLoader
from pathmnist.device import resolve_device, resolve_precision
from pathmnist.evaluation import metrics
from pathmnist.model.registry import build
from pathmnist.training import loop, prepare
from pathmnist.training.fit import fit as fit_run

# --quick takes about a minute on 2 busy cores; the default 5-8 minutes. Batch 128 is the
# seed's baseline; --quick uses 32 so that its few images still make several batches.
DEFAULT = dict(train=2048, val=1000, size=64, batch_size=128, repeats=2, step_batches=4,
               auc_n=100_000)  # fmt: skip
QUICK = dict(train=128, val=64, size=32, batch_size=32, repeats=1, step_batches=2, auc_n=10_000)
REF_STABLE = 0.05  # The seed-style reference stops once two epochs agree within 5%.
GENERATE_LIMIT = 2 << 30  # Bytes; larger splits are random: generating them takes minutes.
# (figure, measurement, unit, images per measurement or None for a time). A rate's ratio is
# ours / reference, a time's reference / ours: both read "times faster than the reference".
FIGURES = (
    ("input pipeline", "input", "images/s", "train"),
    ("training step", "step", "images/s", "step"),
    ("fit epoch, precision auto", "fit", "s/epoch", None),
    ("fit epoch, fp32", "fit_fp32", "s/epoch", None),
    ("evaluation", "eval", "images/s", "val"),
    ("macro AUC", "auc", "ms", None),
)
ROWS = tuple(f[0] for f in FIGURES)


def timed(device, fn):
    """(seconds, result) of fn(), with the GPU's queue drained on both sides."""
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    sync()
    start = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - start, out


class Batches:
    """Batches already made, read by train_one_epoch like a BatchLoader."""

    def __init__(self, batches, device):
        self.batches, self.device, self.generator = batches, device, None

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


def make_data(args):
    """(train, val) ImageSets: the synthetic PathMNIST, or random bytes when very large."""
    if args.train * args.size**2 * 3 <= GENERATE_LIMIT:
        arrays = synthetic.generate(args.train, args.val, 1, size=args.size, seed=0)
        pairs = [(arrays[f"{s}_images"], arrays[f"{s}_labels"].ravel()) for s in ("train", "val")]
    else:
        rng = np.random.default_rng(0)
        shape = (args.size, args.size, 3)
        pairs = [(rng.integers(0, 256, (n, *shape), dtype=np.uint8), np.arange(n) % 9)
                 for n in (args.train, args.val)]  # fmt: skip
    return tuple(ImageSet(images, labels, CLASS_NAMES) for images, labels in pairs)


def drain(device, batches, to_device=False):
    """Iterate an input pipeline; `to_device`: move each batch as the seed's loop does."""
    for x, y in batches:
        if to_device:  # (B, 3, H, W) float32 and (B, 1) labels, made on the host.
            x, y = x.to(device), y.squeeze(1).long().to(device)


def forward_only(model, batches, fn):
    """Pure inference over ready batches: the forward part of an evaluation."""
    model.eval()
    with torch.no_grad():
        for x, _ in batches:
            fn(x)
    model.train()


def measure(args, device, precision, train, val, work):
    """Every measurement, interleaved; returns ({key/side: median seconds}, extras)."""
    b, mean, std = args.batch_size, *channel_stats(train)
    train_tf, eval_tf = build_transforms(mean, std)  # The seed's baseline: no augmentation.
    ours_train = BatchLoader(train, b, shuffle=True, transform=train_tf, device=device)
    ours_val = BatchLoader(val, loop.EVAL_BATCH_SIZE, shuffle=False, transform=eval_tf,
                           device=device)  # fmt: skip
    ref_train = ref.seed_loader(train.images, train.labels, mean, std, True, b)
    ref_val = ref.seed_loader(val.images, val.labels, mean, std, False, b)
    to_device = lambda batches: [(x.to(device), y.squeeze(1).long().to(device)) for x, y in batches]

    # The same images for both training steps: the first k batches in file order.
    k = min(args.step_batches, len(train) // b)
    in_order = BatchLoader(train, b, shuffle=False, transform=train_tf, device=device)
    ours_batches = Batches(list(itertools.islice(in_order, k)), device)
    items = ref.SeedDataset(train.images, train.labels, mean, std)
    ref_batches = to_device(default_collate([items[j] for j in range(i * b, i * b + b)])
                            for i in range(k))  # fmt: skip
    ours_val_batches, ref_val_batches = list(ours_val), to_device(ref_val)

    # Our model and optimizer as `fit` builds them for the baseline config.
    ours_model = build("resnet18", num_classes=train.num_classes).to(device)
    if precision == "bf16":
        ours_model = ours_model.to(memory_format=torch.channels_last)
    ours_opt = prepare.build_optimizer(TrainConfig(), ours_model)
    ref_model, criterion, ref_opt, _ = ref.seed_model(device, train.num_classes)
    ours_forward = lambda x: loop.forward(ours_model, x, precision)

    def ref_steps(batches):
        for x, y in batches:
            ref.seed_step(ref_model, criterion, ref_opt, x, y)

    logits = np.random.default_rng(0).standard_normal((args.auc_n, train.num_classes))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)  # (N, C), rows sum to 1
    labels = np.arange(args.auc_n) % train.num_classes
    sk_auc = lambda: roc_auc_score(labels, probs, multi_class="ovr")

    compute = {"fit": [], "fit_fp32": []}  # Seconds inside fit's "compute" timers.

    def fit(p, compile=False, epochs=args.epochs, key=None):  # patience = epochs: all run.
        config = TrainConfig(epochs=epochs, patience=epochs, batch_size=b, device=device.type,
                             precision=p, compile=compile)  # fmt: skip
        timers = loop.Timers(device) if key else None
        history = fit_run(config, train, val, work / "ours", quiet=True, overwrite=True,
                          timers=timers)  # fmt: skip
        if key:
            compute[key].append(timers.seconds["compute"])
        return history

    def seed():
        return ref.seed_epoch(train.images, train.labels, val.images, val.labels, device,
                              work, args.ref_epochs, mean, std, b,
                              stable=REF_STABLE if args.ref_epochs > 1 else None)  # fmt: skip

    # Warm-up, untimed: lazy initialisation, cuDNN's algorithm search, allocator growth.
    loop.train_one_epoch(ours_model, Batches(ours_batches.batches[:1], device), ours_opt,
                             precision)  # fmt: skip
    ref_steps(ref_batches[:1])
    forward_only(ours_model, ours_val_batches[:1], ours_forward)
    forward_only(ref_model, ref_val_batches[:1], ref_model)

    pairs = {  # key: (ours, reference), zero-argument callables
        "input": (lambda: drain(device, ours_train), lambda: drain(device, ref_train, True)),
        "step": (lambda: loop.train_one_epoch(ours_model, ours_batches, ours_opt, precision),
                 lambda: ref_steps(ref_batches)),
        "forward": (lambda: forward_only(ours_model, ours_val_batches, ours_forward),
                    lambda: forward_only(ref_model, ref_val_batches, ref_model)),
        "eval": (lambda: loop.evaluate(ours_model, ours_val, precision),
                 lambda: ref.seed_validate(ref_model, criterion, ref_val, device)),
        "auc": (lambda: metrics.macro_auc(labels, probs), sk_auc),
        "fit": (lambda: fit(precision, key="fit"), seed),
    }  # fmt: skip
    if precision != "fp32":
        pairs["fit_fp32"] = (lambda: fit("fp32", key="fit_fp32"), None)
    times = {f"{key}/{side}": [] for key in pairs for side in ("ours", "ref")}
    eager, acc = [], [None, None]  # fit's own epoch seconds; last validation accuracies
    shares, ref_epochs = {"fit": [], "fit_fp32": []}, []  # Timed share outside compute
    for r in range(args.repeats):
        for key, (ours, theirs) in pairs.items():
            ours_train.set_epoch(r)
            for side in ("ours", "ref") if r % 2 == 0 else ("ref", "ours"):
                fn = ours if side == "ours" else theirs
                if fn is None:
                    continue
                seconds, out = timed(device, fn)
                if key.startswith("fit"):  # Seconds per epoch, setup included.
                    ran = out["epochs"] if side == "ref" else args.epochs
                    if side == "ours":
                        shares[key].append(1 - compute[key][-1] / seconds)
                    seconds /= ran
                times[f"{key}/{side}"].append(seconds)
                if key == "fit":  # A History (ours) or the seed's dict of numbers.
                    row = out.rows[-1] if side == "ours" else out
                    acc[side == "ref"] = row["val_acc"]
                    if side == "ours":
                        eager.append(row["seconds"])
                    else:
                        ref_epochs.append(out["epochs"])
            done = ", ".join(
                f"{name} {v[-1]:.3f} s"
                for name, v in times.items()
                if name.startswith(key + "/") and len(v) > r
            )
            print(f"repeat {r + 1}/{args.repeats}: {done}", flush=True)
    extras = {"k": k, "acc": acc, "eager": statistics.median(eager), "ref_epochs": ref_epochs,
              "share": {key: v for key, v in shares.items() if v},
              "compute": {key: statistics.median(v) / args.epochs for key, v in compute.items()
                          if v}}  # fmt: skip
    extras["auc"] = (metrics.macro_auc(labels, probs), sk_auc())
    if args.compile:  # Once: a second compile in this process would hit its caches.
        extras["compile"] = [row["seconds"] for row in fit(precision, True, 2).rows]
    return {key: statistics.median(v) for key, v in times.items() if v}, extras


def tables(t, extras, args, precision):
    """The Markdown text: the ratio table, its notes, then the epoch split."""
    images = {"train": args.train, "val": args.val, "step": extras["k"] * args.batch_size}
    t.setdefault("fit_fp32/ours", t["fit/ours"])  # precision auto is fp32: one measurement.
    extras["share"].setdefault("fit_fp32", extras["share"]["fit"])
    extras["compute"].setdefault("fit_fp32", extras["compute"]["fit"])
    t["fit_fp32/ref"] = t["fit/ref"]
    rows = [(f, t[f"{key}/ours"], t[f"{key}/ref"], unit, n) for f, key, unit, n in FIGURES]
    if "compile" in extras:
        rows.append(("torch.compile fit epoch", extras["compile"][1], extras["eager"], "s/epoch",
                     None))  # fmt: skip
    tf32 = " (TF32 convolutions)" if extras.get("device") == "cuda" else ""
    lines = ["| figure | ours | reference | unit | speedup (ours vs reference) |",
             "|---|---:|---:|---|---:|"]  # fmt: skip
    for figure, ours, theirs, unit, n in rows:
        if n is not None:  # A rate: images per second.
            ours, theirs = images[n] / ours, images[n] / theirs
        ratio = ours / theirs if n is not None else theirs / ours
        scale = 1e3 if unit == "ms" else 1
        what = f" ({precision})" if figure in ROWS[1:3] else tf32 if "fp32" in figure else ""
        lines.append(f"| {figure}{what} | {ours * scale:,.4g} | {theirs * scale:,.4g} | {unit} "
                     f"| {ratio:.2f}x |")  # fmt: skip
    ours_auc, sk_auc = extras["auc"]
    lines += ["", f"- Macro AUC of {args.auc_n:,} x 9 softmax scores: ours {ours_auc:.15f}, "
              f"sklearn {sk_auc:.15f} (difference {abs(ours_auc - sk_auc):.1e}).",
              f"- Validation accuracy after the last fit epoch: ours {extras['acc'][0]:.4f}, "
              f"reference {extras['acc'][1]:.4f} (different initial weights: a check that both "
              "train, not a comparison)."]  # fmt: skip
    if precision == "fp32":
        lines.append("- Precision auto is fp32 here: both fit rows are one measurement.")
    if "compile" in extras:
        first, second = extras["compile"][:2]
        lines.append(f"- torch.compile: epoch 2 of `fit(compile=True)` (train + validation) "
                     f"against an eager epoch of `fit`; compiling took {first - second:.1f} s "
                     "(epoch 1 minus epoch 2).")  # fmt: skip
    ran = extras["ref_epochs"]
    lines.append(f"- Seed-style reference: {min(ran)}-{max(ran)} epoch(s) per run (it stops "
                 "once two epochs agree within 5%, at most --ref-epochs); ours: "
                 f"{args.epochs} epoch(s) per fit.")  # fmt: skip
    lines += ["", "| fit epoch | seconds | forward/backward/optimizer | everything else "
              "| share (median) | shares |", "|---|---:|---:|---:|---:|---|"]  # fmt: skip
    for key, name in (("fit", f"precision auto ({precision})"), ("fit_fp32", f"fp32{tf32}")):
        if key not in extras["share"]:
            continue
        epoch, compute, shares = t[f"{key}/ours"], extras["compute"][key], extras["share"][key]
        lines.append(f"| {name} | {epoch:.3g} | {compute:.3g} | {epoch - compute:.3g} | "
                     f"{statistics.median(shares):.1%} | "
                     f"{', '.join(f'{v:.1%}' for v in shares)} |")  # fmt: skip
    lines.append("\nMeasured inside `fit` (`loop.Timers`, opt-in): forward/backward/optimizer is "
                 "the sum of the training steps (zero_grad, forward, loss, backward, optimizer "
                 "step) and the validation forwards; everything else is the rest of the call "
                 "(input pipeline, transforms, metrics, checkpoints, setup). Target: a share "
                 "of at most 10%.")  # fmt: skip
    return "\n".join(lines)


def machine_lines(args, argv, device, precision, k, load_before):
    """The run's facts: date, device, CPU, cores, bf16 support, torch, command, sizes."""
    flags, yes = cpu_flags(), lambda flag: "yes" if flag in cpu_flags() else "no"
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    command = shlex.join(["python", "benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])
    shared = " (shared cores: compare the ratios)" if device.type == "cpu" else ""
    return [
        f"- date: {time.strftime('%Y-%m-%d %H:%M')}; device: {device.type}; GPU: {gpu}",
        f"- CPU: {cpu_model()}, {cores()} cores; avx512_bf16: {yes('avx512_bf16')}, "
        f"amx: {yes('amx_bf16') if flags else 'unknown'}; precision auto = {precision}",
        f"- torch {torch.__version__}, {torch.get_num_threads()} threads; load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after{shared}",
        f"- command: `{command}`",
        f"- sizes: {args.train:,} train / {args.val:,} val images of {args.size}x{args.size}, "
        f"batch {args.batch_size}, {args.epochs} epoch(s) per fit, training step on {k} "
        f"batch(es), medians of {args.repeats} interleaved repeat(s)",
    ]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: proves the script runs")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    for name in DEFAULT:
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=None,
                       help=f"default {DEFAULT[name]} ({QUICK[name]} with --quick)")  # fmt: skip
    p.add_argument("--epochs", type=int, default=1, help="epochs per fit (1)")
    p.add_argument(
        "--ref-epochs",
        type=int,
        default=None,
        help="at most this many seed-style epochs, fewer once stable (--epochs)",
    )
    p.add_argument("--compile", action="store_true", help="add the torch.compile row")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", type=Path, default=RESULTS, help="results file (RESULTS.md)")
    args = p.parse_args(argv)
    for name, value in (QUICK if args.quick else DEFAULT).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if min(args.train, args.val, args.batch_size, args.repeats, args.epochs) < 1:
        p.error("sizes, repeats and epochs must be at least 1")
    if args.train < args.batch_size:
        p.error("--train must hold at least one batch (--batch-size)")
    args.compile = args.compile and not args.quick  # Compiling alone outlasts --quick.
    args.ref_epochs = args.ref_epochs or args.epochs
    if args.threads > 0:  # On shared cores one thread avoids waiting for a descheduled peer.
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    precision = resolve_precision("auto", device)
    load_before = os.getloadavg()[0]
    train, val = make_data(args)
    with tempfile.TemporaryDirectory(prefix="pathmnist-bench-") as work:
        t, extras = measure(args, device, precision, train, val, Path(work))
    extras["device"] = device.type
    info = machine_lines(args, argv, device, precision, extras["k"], load_before)
    body = "\n".join(info) + "\n\n" + tables(t, extras, args, precision)
    title = f"Ours vs the seed-style reference ({device.type})"
    write_section(f"run-{device.type}", title, body, path=args.out, stamp=False)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
