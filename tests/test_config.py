"""pathmnist.config: the defaults are the seed project's recipe, every field's bad value is
refused with one sentence naming the field, a config round-trips through a dict and JSON,
parse_augment reads every spelling (the first version's True included), and
seed_everything repeats torch's, numpy's and Python's draws."""

import dataclasses
import json
import random

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from pathmnist import config as C
from pathmnist.config import ARCHS, STEMS, TrainConfig, parse_augment, seed_everything
from pathmnist.errors import PathMNISTError

# Valid augmentation tuples: any subset of the names in any order, but never both HED
# strengths (validate refuses that pair).
augments = (
    st.lists(st.sampled_from(C.AUGMENTATIONS), unique=True, max_size=4)
    .filter(lambda a: not {"hed-light", "hed-strong"} <= set(a))
    .map(tuple)
)
reals = st.floats(0.0, 10.0)

# Every field with values validate() accepts, bounds included.
valid_configs = st.builds(
    TrainConfig,
    arch=st.sampled_from(ARCHS),
    stem=st.sampled_from(STEMS),
    optimizer=st.sampled_from(C.OPTIMIZERS),
    lr=st.floats(1e-8, 10.0),
    momentum=st.floats(0.0, 0.999),
    batch_size=st.integers(1, 4096),
    epochs=st.integers(1, 1000),
    weight_decay=st.floats(0.0, 1.0),
    step_size=st.integers(1, 100),
    gamma=st.floats(1e-6, 1.0),
    patience=st.integers(0, 100),
    min_delta=reals,
    monitor=st.sampled_from(tuple(C.MONITORS)),
    augment=augments,
    stain_normalize=st.booleans(),
    loss=st.sampled_from(C.LOSSES),
    label_smoothing=st.floats(0.0, 0.999),
    focal_gamma=st.floats(0.0, 10.0),
    mixup=reals,
    cutmix=reals,
    size=st.none() | st.integers(1, 512),
    seed=st.integers(0, C.MAX_SEED),
    tta=st.booleans(),
    device=st.sampled_from(C.DEVICES),
    precision=st.sampled_from(C.PRECISIONS),
    compile=st.booleans(),
    deterministic=st.booleans(),
)


def test_defaults_are_the_seed_recipe():
    """TrainConfig() is the seed's baseline: ResNet-18 with torchvision's stem, Adam 1e-3,
    batch 128, 10 epochs, weight decay 1e-4, StepLR(5, 0.1), patience 3 on val_loss (mode
    min, min_delta 0), cross-entropy without smoothing, no augmentation, mixing or TTA."""
    c = TrainConfig()
    assert (c.arch, c.stem, c.optimizer, c.lr, c.batch_size, c.epochs) == (
        "resnet18", "imagenet", "adam", 1e-3, 128, 10,
    )  # fmt: skip
    assert (c.weight_decay, c.step_size, c.gamma) == (1e-4, 5, 0.1)
    assert (c.patience, c.monitor, c.min_delta, C.MONITORS[c.monitor]) == (3, "val_loss", 0, "min")
    assert (c.loss, c.label_smoothing, c.augment, c.mixup, c.cutmix) == ("ce", 0.0, (), 0, 0)
    assert (c.stain_normalize, c.tta, c.size, c.seed, c.momentum) == (False, False, None, 0, 0.9)
    assert (c.device, c.precision, c.compile, c.deterministic) == ("auto", "auto", False, False)
    assert c.validate() is c


# One or more bad values for every field, with words the message must hold.
BAD = [
    ("arch", "resnet19", "resnet18, resnet34, resnet50"),
    ("arch", None, "choose one of"),
    ("stem", "tiny", "imagenet, small"),
    ("weights", "", "None, 'imagenet' or the path"),
    ("weights", 3, "None, 'imagenet' or the path"),
    ("freeze_epochs", -1, ">= 0"),
    ("randaugment_n", -1, ">= 0"),
    ("randaugment_m", 31, "[0, 30]"),
    ("randaugment_m", 9.0, "whole number"),
    ("optimizer", "adamw", "adam, sgd"),
    ("lr", 0.0, "(0, "),
    ("lr", -1e-3, "(0, "),
    ("lr", float("nan"), "finite"),
    ("lr", "0.1", "finite number"),
    ("momentum", 1.0, "[0, 1)"),
    ("momentum", -0.1, "[0, 1)"),
    ("batch_size", 0, "[1, "),
    ("batch_size", 8.0, "whole number"),
    ("batch_size", True, "whole number"),
    ("epochs", 0, "[1, "),
    ("epochs", True, "whole number"),
    ("weight_decay", -1e-4, "[0, "),
    ("step_size", 0, "[1, "),
    ("gamma", 0, "(0, "),
    ("patience", -1, "[0, "),
    ("patience", 2.5, "whole number"),
    ("min_delta", float("inf"), "finite"),
    ("min_delta", -0.1, "[0, "),
    ("monitor", "val_f1", "val_loss, val_acc, val_auc"),
    ("augment", "yes", ", ".join(C.AUGMENTATIONS)),
    ("augment", True, "tuple of names"),
    ("augment", ("rotate",), "tuple of names"),
    ("augment", ["flips"], "tuple of names"),
    ("augment", ("flips", "flips"), "twice"),
    ("augment", ("hed-light", "hed-strong"), "pick one"),
    ("stain_normalize", 1, "True or False"),
    ("loss", "mse", "ce, weighted, focal"),
    ("label_smoothing", 1.0, "[0, 1)"),
    ("label_smoothing", -0.1, "[0, 1)"),
    ("focal_gamma", -1.0, "[0, "),
    ("mixup", -0.2, "[0, "),
    ("cutmix", float("nan"), "finite"),
    ("size", 0, "[1, "),
    ("size", 32.0, "whole number"),
    ("seed", -1, f"[0, {C.MAX_SEED}]"),
    ("seed", C.MAX_SEED + 1, f"[0, {C.MAX_SEED}]"),
    ("tta", "yes", "True or False"),
    ("device", "tpu", "auto, cpu, cuda"),
    ("precision", "fp16", "auto, fp32, bf16"),
    ("compile", None, "True or False"),
    ("deterministic", 0, "True or False"),
    # Finite but far beyond sense: refused before training overflows with them.
    ("weight_decay", 1e308, "[0, 1.0]"),
    ("lr", 1e6, "(0, 10.0]"),
    ("gamma", 2.0, "(0, 1.0]"),
    ("focal_gamma", 1e4, "[0, 10.0]"),
    ("mixup", 1e9, "[0, 100.0]"),
    ("min_delta", 1e300, "[0, 10.0]"),
    ("batch_size", 10**9, "[1, 65536]"),
    ("epochs", 10**12, "[1, 100000]"),
    ("size", 4096, "[1, 1024]"),
]


@pytest.mark.parametrize(("field", "value", "words"), BAD)
def test_bad_values_are_refused_naming_the_field(field, value, words):
    """validate() raises one PathMNISTError sentence naming the field, its value and what
    is allowed; from_dict refuses the same (augment's spellings are parse_augment's, below)."""
    with pytest.raises(PathMNISTError) as info:
        dataclasses.replace(TrainConfig(), **{field: value}).validate()
    message = str(info.value)
    assert f"TrainConfig {field}" in message and words in message, message
    assert "\n" not in message and message.endswith(".")
    if field != "augment":  # (augment's pair and duplicate refusals name the names instead.)
        assert f"TrainConfig {field}={value!r} is not allowed; " in message
        with pytest.raises(PathMNISTError, match=f"TrainConfig {field}="):
            TrainConfig.from_dict({field: value})


def test_every_field_has_a_bad_value_tested():
    """A new TrainConfig field cannot slip in without a refusal test above."""
    assert {f.name for f in dataclasses.fields(TrainConfig)} == {field for field, _, _ in BAD}


@given(valid_configs)
@example(TrainConfig())
@example(TrainConfig(seed=C.MAX_SEED, momentum=0.0, patience=0, size=1, augment=("flips",)))
def test_dict_and_json_round_trip(config):
    """A valid config validates, and from_dict(to_dict()) and a trip through JSON text give
    back an equal config (augment travels as a list and comes back a tuple)."""
    assert config.validate() is config
    d = config.to_dict()
    assert isinstance(d["augment"], list)
    assert TrainConfig.from_dict(d) == config
    assert TrainConfig.from_dict(json.loads(json.dumps(d))) == config


def test_from_dict_keeps_defaults_for_missing_fields_and_refuses_unknown_ones():
    """Missing fields keep their defaults; an unknown field is named with the valid ones."""
    assert TrainConfig.from_dict({"lr": 0.5}) == TrainConfig(lr=0.5)
    assert TrainConfig.from_dict({}) == TrainConfig()
    with pytest.raises(PathMNISTError, match=r"unknown TrainConfig field\(s\) learning_rate; "):
        TrainConfig.from_dict({"learning_rate": 0.1, "lr": 0.1})


def test_from_json_reads_both_layouts_and_names_bad_files(tmp_path):
    """A bare config (best_config.json) and a run's config.json (config under "config")
    read back; a missing file, broken JSON and a JSON list are named errors."""
    c = TrainConfig(lr=0.5, augment=("flips", "color"))
    (tmp_path / "best_config.json").write_text(json.dumps(c.to_dict()))
    (tmp_path / "config.json").write_text(json.dumps({"config": c.to_dict(), "num_classes": 9}))
    assert TrainConfig.from_json(tmp_path / "best_config.json") == c
    assert TrainConfig.from_json(tmp_path / "config.json") == c
    with pytest.raises(PathMNISTError, match=r"no config file.*02_tuning"):
        TrainConfig.from_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PathMNISTError, match="not a readable JSON"):
        TrainConfig.from_json(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(PathMNISTError, match="holds a list, not a config object"):
        TrainConfig.from_json(tmp_path / "list.json")


def test_a_first_version_config_with_augment_true_still_reads():
    """best_config.json files of the course's first version say "augment": true, which
    meant the flips; false meant none."""
    assert TrainConfig.from_dict({"augment": True}).augment == ("flips",)
    assert TrainConfig.from_dict({"augment": False}).augment == ()


# parse_augment


@given(augments, st.sampled_from([",", ", ", " ,"]))
@example((), ",")
def test_parse_augment_reads_every_spelling(names, sep):
    """A comma-separated string (spaces around names allowed), a list and a tuple of the
    same names give the same tuple, in the order given."""
    assert parse_augment(list(names)) == names
    assert parse_augment(names) == names
    if names:
        assert parse_augment(sep.join(names)) == names


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, ("flips",)), (False, ()), ("", ()), ("none", ()), (" none ", ()),
     ("flips,hed-light", ("flips", "hed-light")), (["color"], ("color",))],
)  # fmt: skip
def test_parse_augment_golden(value, expected):
    """The legacy bools and the words for none read as documented."""
    assert parse_augment(value) == expected


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("flip", "unknown augmentation 'flip'"),
        ("flips,,color", "unknown augmentation ''"),
        ("flips,rotate,zoom", "'rotate', 'zoom'"),
        (1, "augment=1 is not allowed"),
        (None, "augment=None"),
        ([True], r"augment=\[True\]"),
    ],
)
def test_parse_augment_refuses_unknown_names(value, words):
    """An unknown name is quoted and the choices listed; a non-string is refused."""
    with pytest.raises(PathMNISTError, match=words) as info:
        parse_augment(value)
    assert ", ".join(C.AUGMENTATIONS) in str(info.value)


# Seeding


def draws():
    return torch.rand(3), np.random.random(3), random.random()  # noqa: NPY002


@given(st.integers(0, C.MAX_SEED))
@example(C.MAX_SEED)
def test_seed_everything_repeats_every_generator(seed):
    """The same seed gives the same next draws from torch, numpy's global generator and
    Python's random; the next seed gives others."""
    seed_everything(seed)
    first = draws()
    seed_everything(seed)
    again = draws()
    seed_everything((seed + 1) % (C.MAX_SEED + 1))
    other = draws()
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2] == again[2]
    assert not torch.equal(first[0], other[0]) and not np.array_equal(first[1], other[1])
    assert first[2] != other[2]


def test_resume_may_change_only_where_and_how_long():
    """RESUME_MAY_CHANGE names real fields, none of which changes what is learned."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(C.RESUME_MAY_CHANGE) <= names
    assert set(C.RESUME_MAY_CHANGE) == {"epochs", "device", "precision", "compile", "deterministic"}


def test_check_seeds_refuses_derived_seeds_out_of_range():
    """A study's seeds run from --seed upwards: the last one must still fit MAX_SEED."""
    assert C.check_seeds(5, 3) == [5, 6, 7]
    assert C.check_seeds(C.MAX_SEED, 1) == [C.MAX_SEED]
    with pytest.raises(PathMNISTError, match=f"up to {C.MAX_SEED + 1}.*--seeds"):
        C.check_seeds(C.MAX_SEED, 2, "--seeds")
    with pytest.raises(PathMNISTError, match="--repeats=0"):
        C.check_seeds(0, 0)
