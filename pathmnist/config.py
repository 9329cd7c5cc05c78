"""A training run's settings: TrainConfig (the seed project's baseline as its defaults), the
choices each field allows, and the seeding that makes a run repeatable.

The command line (`pathmnist.cli`) takes its choices from the constants here, the training
loop reads the fields, and checkpoints store `to_dict()`. Fields fall in three groups:
what the experiment is (model, optimiser, schedule, augmentation, loss, seed), where and how
it is computed (device, precision, compile, deterministic: RESUME_MAY_CHANGE lists them,
since they may change when a run resumes on another machine), and how it is evaluated (tta).

Tested in tests/test_config.py (defaults equal the seed's recipe, every field's bad values
are refused with one sentence, JSON round trip, seeding repeats torch, numpy and Python).
"""

import dataclasses
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pathmnist import checks
from pathmnist.errors import PathMNISTError

# The networks `model.registry.build` knows, and the ResNet stems: "imagenet" (7x7 stride-2
# conv and max-pool, torchvision's) or "small" (3x3 stride-1, no max-pool: MedMNIST-28 style).
ARCHS = ("resnet18", "resnet34", "resnet50", "densenet121")
STEMS = ("imagenet", "small")
# What EarlyStopping may monitor, with its mode: a loss falls, an accuracy or AUC rises.
MONITORS = {"val_loss": "min", "val_acc": "max", "val_auc": "max"}
OPTIMIZERS = ("adam", "sgd")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
LOSSES = ("ce", "weighted", "focal")  # Cross-entropy, class-weighted CE, focal loss.
# Batch augmentations by name, applied in this order (augment.transforms.AUGMENTATION_TABLE):
# "flips" = random horizontal and vertical flips and 90-degree rotations (the dihedral
# group: tissue has no up or down); "randaugment" = N of torchvision's 14 RandAugment
# operations per image at magnitude M (randaugment_n, randaugment_m); "hed-faint",
# "hed-light" and "hed-strong" = Tellez et al.'s stain jitter, faint being well below the
# training split's own stain spread; "he-*" = the same jitters on haematoxylin and eosin
# only (H&E slides hold no DAB); "randstainna" = Shen et al.'s stain statistics drawn from
# the training split's own (augment.randstainna); "color" = brightness, contrast,
# saturation and hue jitter.
AUGMENTATIONS = (
    "flips",
    "randaugment",
    "hed-faint",
    "hed-light",
    "hed-strong",
    "he-faint",
    "he-light",
    "he-strong",
    "randstainna",
    "color",
)
# Fields a resume may change: how long to train and where/how to compute. Any other change
# would make the resumed run a different experiment from the one saved in last.pt.
RESUME_MAY_CHANGE = ("epochs", "device", "precision", "compile", "deterministic")
MAX_SEED = 2**32 - 1  # numpy's legacy seed and the loader's (seed, epoch) stream fit here.
# Upper bounds far beyond any sensible run, so a typo (1e308, 1e9 epochs) is refused before
# it overflows in training: a weight decay of 1e308 times a weight is infinite.
LIMITS = {
    "lr": 10.0,  # Adam diverges far below; SGD's usual range tops out near 1.
    "weight_decay": 1.0,  # L2 factors are 1e-5..1e-2 in practice.
    "gamma": 1.0,  # StepLR's factor: 1 keeps the lr, above 1 would grow it every step.
    "min_delta": 10.0,  # In the monitor's units: losses and accuracies are far below.
    "focal_gamma": 10.0,  # Lin et al. 2017 try 0..5; (1 - p)**gamma underflows above.
    "mixup": 100.0,  # Beta(alpha, alpha): alpha 100 already mixes every pair half-half.
    "cutmix": 100.0,
    "batch_size": 65536,
    "epochs": 100_000,
    "step_size": 100_000,
    "patience": 100_000,
    "size": 1024,  # Four times PathMNIST's largest (224).
}


@dataclass
class TrainConfig:
    """One training run's settings; the defaults are the seed project's baseline."""

    arch: str = "resnet18"  # The seed's model (config.ARCHS lists the others).
    stem: str = "imagenet"  # The seed used torchvision's stem (7x7/2 conv + max-pool).
    weights: str | None = None  # None: random init (the seed); "imagenet" or a state dict file.
    freeze_epochs: int = 0  # With weights: epochs in which only the new head trains first.
    optimizer: str = "adam"  # The seed's baseline; its grid also tried "sgd".
    lr: float = 1e-3  # Seed baseline, confirmed best by its grid search.
    momentum: float = 0.9  # SGD only: the usual heavy-ball value, as the seed's SGD runs.
    batch_size: int = 128  # Seed baseline (its grid search preferred 64).
    epochs: int = 10  # Seed baseline.
    weight_decay: float = 1e-4  # Seed: an L2 penalty passed to the optimizer.
    step_size: int = 5  # Seed: StepLR(step_size=5, gamma=0.1), lr / 10 after epoch 5.
    gamma: float = 0.1  # Seed, as above.
    patience: int = 3  # Seed: stop after 3 epochs without improvement.
    min_delta: float = 0.0  # Keras's default: any improvement counts.
    monitor: str = "val_loss"  # Seed: the validation loss (mode min).
    augment: tuple[str, ...] = ()  # The seed trained without augmentation.
    randaugment_n: int = 2  # RandAugment's operations per image (torchvision's default).
    randaugment_m: int = 9  # RandAugment's magnitude, 0..30 (torchvision's default).
    stain_normalize: bool = False  # Macenko normalisation to the training stain (lesson 4).
    loss: str = "ce"  # The seed's cross-entropy; "weighted" and "focal" are lesson 5's.
    label_smoothing: float = 0.0  # 0 = hard targets, as the seed.
    focal_gamma: float = 2.0  # Lin et al. 2017's default; used only with loss "focal".
    mixup: float = 0.0  # MixUp's Beta(alpha, alpha); 0 switches it off (the seed's choice).
    cutmix: float = 0.0  # CutMix's alpha, as above; with both on, each batch picks one.
    size: int | None = None  # Resize to size x size; None keeps the data's (seed: 64).
    seed: int = 0  # Fixes initial weights, batch order and augmentation.
    tta: bool = False  # Evaluate with the 8 flips and rotations averaged (lesson 4).
    device: str = "auto"  # CUDA when present, else the CPU.
    precision: str = "auto"  # bf16 where the hardware has it natively, else fp32.
    compile: bool = False  # torch.compile the model: slower start, faster steps on a GPU.
    deterministic: bool = False  # Deterministic GPU kernels (slower); the CPU always is.

    def validate(self) -> "TrainConfig":
        """Raise PathMNISTError naming the first bad field; return self if all are fine."""
        for name, allowed in (
            ("arch", ARCHS),
            ("stem", STEMS),
            ("optimizer", OPTIMIZERS),
            ("monitor", tuple(MONITORS)),
            ("loss", LOSSES),
            ("device", DEVICES),
            ("precision", PRECISIONS),
        ):
            checks.choice(getattr(self, name), f"TrainConfig {name}", allowed)
        for name, low in (("batch_size", 1), ("epochs", 1), ("step_size", 1), ("patience", 0)):
            checks.whole(getattr(self, name), f"TrainConfig {name}", low, LIMITS[name])
        checks.whole(self.seed, "TrainConfig seed", 0, MAX_SEED)
        checks.whole(self.freeze_epochs, "TrainConfig freeze_epochs", 0)
        checks.whole(self.randaugment_n, "TrainConfig randaugment_n", 0)
        checks.whole(self.randaugment_m, "TrainConfig randaugment_m", 0, 30)
        if self.weights is not None and (not isinstance(self.weights, str) or not self.weights):
            raise PathMNISTError(
                f"TrainConfig weights={self.weights!r} is not allowed; use None, 'imagenet' "
                "or the path of a state dict file."
            )
        if self.freeze_epochs and self.weights is None:
            raise PathMNISTError(
                "TrainConfig freeze_epochs needs pretrained weights (a random backbone would "
                "stay random); pass --weights too, or drop --freeze-epochs."
            )
        if self.size is not None:
            checks.whole(self.size, "TrainConfig size", 1, LIMITS["size"])
        checks.real(self.lr, "TrainConfig lr", 0, LIMITS["lr"], low_open=True)
        checks.real(self.gamma, "TrainConfig gamma", 0, LIMITS["gamma"], low_open=True)
        checks.real(self.momentum, "TrainConfig momentum", 0, 1, high_open=True)
        for name in ("weight_decay", "min_delta", "focal_gamma", "mixup", "cutmix"):
            checks.real(getattr(self, name), f"TrainConfig {name}", 0, LIMITS[name])
        checks.real(self.label_smoothing, "TrainConfig label_smoothing", 0, 1, high_open=True)
        for name in ("stain_normalize", "tta", "compile", "deterministic"):
            checks.flag(getattr(self, name), f"TrainConfig {name}")
        if not isinstance(self.augment, tuple) or not all(a in AUGMENTATIONS for a in self.augment):
            raise PathMNISTError(
                f"TrainConfig augment={self.augment!r} is not allowed; give a tuple of names "
                f"from {', '.join(AUGMENTATIONS)} (or () for none)."
            )
        if len(set(self.augment)) != len(self.augment):
            raise PathMNISTError(f"TrainConfig augment={self.augment!r} names one twice.")
        if {"hed-light", "hed-strong"} <= set(self.augment):
            raise PathMNISTError("TrainConfig augment has hed-light and hed-strong; pick one.")
        return self

    def to_dict(self) -> dict:
        """The fields as a plain dict (JSON- and weights_only-safe; augment as a list)."""
        d = dataclasses.asdict(self)
        d["augment"] = list(self.augment)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Build and validate a config; missing fields keep their defaults."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise PathMNISTError(
                f"unknown TrainConfig field(s) {', '.join(unknown)}; use only {', '.join(names)}."
            )
        d = dict(d)
        if "augment" in d:
            d["augment"] = parse_augment(d["augment"])
        return cls(**d).validate()

    @classmethod
    def from_json(cls, path) -> "TrainConfig":
        """Read a config from JSON: a bare config object (best_config.json) or a run's
        config.json (whose "config" key holds it)."""
        try:
            d = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise PathMNISTError(
                f"there is no config file at {path}; write it first "
                "(examples/02_tuning.py writes best_config.json)."
            ) from None
        except (OSError, ValueError) as e:
            raise PathMNISTError(f"{path} is not a readable JSON config ({e}); fix it.") from None
        d = d["config"] if isinstance(d, dict) and isinstance(d.get("config"), dict) else d
        if not isinstance(d, dict):
            raise PathMNISTError(f"{path} holds a {type(d).__name__}, not a config object.")
        return cls.from_dict(d)


def parse_augment(value) -> tuple[str, ...]:
    """Augmentation names from "flips,hed-light", a list of names, or a bool (True meant
    "flips" in the first version of this course; False and "" and "none" mean none)."""
    if isinstance(value, bool):
        return ("flips",) if value else ()
    if isinstance(value, str):
        value = [] if value.strip() in ("", "none") else value.split(",")
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise PathMNISTError(
            f"augment={value!r} is not allowed; give names from {', '.join(AUGMENTATIONS)}."
        )
    names = tuple(v.strip() for v in value)
    bad = [n for n in names if n not in AUGMENTATIONS]
    if bad:
        raise PathMNISTError(
            f"unknown augmentation {', '.join(map(repr, bad))}; choose from "
            f"{', '.join(AUGMENTATIONS)}, comma-separated (e.g. flips,hed-light)."
        )
    return names


def check_seeds(first, count, flag: str = "--repeats") -> list[int]:
    """The seeds first, first + 1, ..., first + count - 1, if the last one is in range too
    (a study's seeds follow its base seed); PathMNISTError naming `flag` otherwise."""
    first, count = checks.whole(first, "seed", 0, MAX_SEED), checks.whole(count, flag, 1)
    if first + count - 1 > MAX_SEED:
        raise PathMNISTError(
            f"seed {first} with {flag} {count} needs seeds up to {first + count - 1}, above "
            f"{MAX_SEED}; lower --seed or {flag}."
        )
    return list(range(first, first + count))


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and every CUDA device), numpy's global generator and Python's."""
    torch.manual_seed(seed)  # Also seeds all CUDA devices.
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy seed fits 32 bits.
    random.seed(seed)
