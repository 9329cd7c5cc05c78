"""Lesson 4's recipes: the source project's baseline plus named changes, by name.

A recipe is a dict of `TrainConfig` fields that replace the baseline's (augmentations,
stain normalisation, test-time augmentation, a loss, starting weights); `ablation.run_study`
trains each with several seeds. The chapters tell them in this order, each adding to the one
before: the flips and quarter turns first (chapter 3), then what goes on top of them.

Tested in tests/test_ablation.py (every recipe is a valid TrainConfig change; the lesson's
default and the sweep name recipes of this table).
"""

RECIPES = {
    "baseline": {},
    "flips": {"augment": ("flips",)},
    "flips+hed-light": {"augment": ("flips", "hed-light")},
    "flips+macenko": {"augment": ("flips",), "stain_normalize": True},
    "flips+randstainna": {"augment": ("flips", "randstainna")},
    # RandAugment (Cubuk et al. 2020) at torchvision's defaults N=2, M=9 (chapter 10).
    "flips+randaugment": {"augment": ("flips", "randaugment")},
    # ImageNet weights for the same network (MedMNIST+'s strongest lever at 64x64); needs
    # torchvision's file in torch.hub's cache (pathmnist.model.pretrained says where).
    "pretrained": {"weights": "imagenet"},
    # The jitter-strength sweep (chosen on validation): from well below the training
    # split's own stain spread up to Tellez's strong preset, on H, E and DAB or H and E only.
    "flips+hed-faint": {"augment": ("flips", "hed-faint")},
    "flips+he-faint": {"augment": ("flips", "he-faint")},
    "flips+he-light": {"augment": ("flips", "he-light")},
    "flips+hed-strong": {"augment": ("flips", "hed-strong")},
    "flips+he-strong": {"augment": ("flips", "he-strong")},
    "flips+hed-light+tta": {"augment": ("flips", "hed-light"), "tta": True},
    # Lesson 5's class-aware losses, against the baseline's cross-entropy.
    "weighted": {"loss": "weighted"},
    "focal": {"loss": "focal"},
}
# What `examples/04_stain_shift.py` runs by default: every recipe that needs no download.
LESSON4 = (
    "baseline",
    "flips",
    "flips+hed-light",
    "flips+macenko",
    "flips+randstainna",
    "flips+randaugment",
)
SWEEP = (
    "flips+hed-faint",
    "flips+he-faint",
    "flips+he-light",
    "flips+hed-strong",
    "flips+he-strong",
)
