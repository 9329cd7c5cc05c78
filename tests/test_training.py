"""The training loop on tiny synthetic sets: the loss falls, the run directory holds what
the contract names, the same seed gives the same history, a resumed run is bit-identical
to an uninterrupted one, early stopping restores the best weights, evaluate's
probabilities are the softmax of the logits, and every user error is a PathMNISTError.

Most tests swap ResNet-18 for a tiny conv + BatchNorm net (registered under the same
name), since they test the loop, not the model; the ones marked slow run the real one."""

import csv
import dataclasses
import json
import math
import random
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from strategies import train_config_kwargs
from torch import nn

from pathmnist import checkpoints, resnet, training
from pathmnist.data import BatchLoader, ImageSet
from pathmnist.errors import PathMNISTError
from pathmnist.training import History, TrainConfig
from pathmnist.transforms import build_transforms

CPU = {"device": "cpu", "precision": "fp32"}


def signal_set(n, seed=0, size=16, k=3):
    """n images, k classes: class c has channel c brightened, the rest is noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % k
    images = rng.integers(0, 100, (n, size, size, 3))
    images[np.arange(n), :, :, labels % 3] += 120
    return ImageSet(images.astype(np.uint8), labels, tuple(f"class {i}" for i in range(k)))


def tiny_net(num_classes=9, stem="imagenet", zero_init_residual=False):
    """conv -> BatchNorm -> ReLU -> global pool -> linear: the loop's stand-in for ResNet."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, num_classes),
    )


@pytest.fixture
def tiny(monkeypatch):
    """Build the tiny net wherever the config says resnet18 (fit and load_checkpoint)."""
    monkeypatch.setitem(resnet.ARCHS, "resnet18", tiny_net)


@pytest.fixture(scope="module")
def splits():
    """40 training and 24 validation images, 16x16, 3 classes."""
    return signal_set(40, seed=0), signal_set(24, seed=1)


def config(**changes):
    """The baseline config on the CPU in fp32 with small batches and a big step size."""
    return TrainConfig(**{**CPU, "batch_size": 8, "lr": 1e-2, "epochs": 3, **changes})


def comparable(path):
    """history.csv's rows without the wall-clock `seconds` column."""
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def assert_same_weights(a, b):
    """Every state_dict tensor equal, bit for bit (BatchNorm running stats included)."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# The defaults and their checks.


def test_defaults_are_the_seed_baseline():
    """TrainConfig() is the seed's baseline: ResNet-18, Adam 1e-3, batch 128, 10 epochs,
    weight decay 1e-4, StepLR(5, 0.1), patience 3 on val_loss."""
    c = TrainConfig()
    assert (c.arch, c.optimizer, c.lr, c.batch_size, c.epochs) == (
        "resnet18",
        "adam",
        1e-3,
        128,
        10,
    )
    assert (c.weight_decay, c.step_size, c.gamma, c.patience, c.monitor) == (
        1e-4,
        5,
        0.1,
        3,
        "val_loss",
    )
    assert (c.momentum, c.seed, c.device, c.precision) == (0.9, 0, "auto", "auto")
    assert c.validate() is c


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("arch", "resnet19", "resnet18, resnet34, resnet50"),
        ("stem", "tiny", "imagenet, small"),
        ("optimizer", "adamw", "adam, sgd"),
        ("monitor", "val_f1", "val_loss, val_acc, val_auc"),
        ("device", "tpu", "auto, cpu, cuda"),
        ("precision", "fp16", "auto, fp32, bf16"),
        ("lr", 0.0, "> 0"),
        ("lr", float("nan"), "> 0"),
        ("lr", -1e-3, "> 0"),
        ("batch_size", 0, ">= 1"),
        ("batch_size", 8.0, "whole number"),
        ("epochs", 0, ">= 1"),
        ("epochs", True, "whole number"),
        ("step_size", 0, ">= 1"),
        ("patience", -1, ">= 0"),
        ("seed", -1, ">= 0"),
        ("gamma", 0, "> 0"),
        ("momentum", 1.0, "[0, 1)"),
        ("weight_decay", -1e-4, ">= 0"),
        ("min_delta", float("inf"), ">= 0"),
        ("augment", "yes", "True or False"),
        ("size", 0, "int >= 1"),
    ],
)
def test_bad_config_values_are_named(field, value, words):
    """validate() raises PathMNISTError naming the field, its value and what is allowed."""
    with pytest.raises(PathMNISTError) as info:
        dataclasses.replace(TrainConfig(), **{field: value}).validate()
    message = str(info.value)
    assert f"{field}=" in message and words in message and repr(value) in message


@given(train_config_kwargs)
def test_config_round_trips_through_dict_and_json(kwargs):
    """from_dict(to_dict()) and a JSON round trip give back an equal config."""
    c = TrainConfig(**kwargs)
    assert TrainConfig.from_dict(c.to_dict()) == c
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_from_dict_and_from_json_errors(tmp_path):
    """An unknown field, a missing file and a non-JSON file are named errors; a run's
    config.json (config under "config") reads back."""
    with pytest.raises(PathMNISTError, match="learning_rate"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(PathMNISTError, match="no config file"):
        TrainConfig.from_json(tmp_path / "best_config.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PathMNISTError, match="not a readable JSON"):
        TrainConfig.from_json(tmp_path / "bad.json")
    (tmp_path / "config.json").write_text(json.dumps({"config": {"lr": 0.5}, "num_classes": 9}))
    assert TrainConfig.from_json(tmp_path / "config.json").lr == 0.5


# Device and precision.


def test_resolve_precision_follows_the_hardware(monkeypatch):
    """auto is fp32 without native bf16 (this CI's CPU) and bf16 with it; fp32 stays."""
    monkeypatch.setattr(training, "cpu_supports_bf16", lambda: False)
    assert training.resolve_precision("auto", "cpu") == "fp32"
    assert training.resolve_precision("fp32", "cpu") == "fp32"
    monkeypatch.setattr(training, "cpu_supports_bf16", lambda: True)
    assert training.resolve_precision("auto", "cpu") == "bf16"
    assert training.resolve_precision("fp32", "cpu") == "fp32"


def test_resolve_precision_on_this_machine():
    """On this machine auto gives bf16 exactly when the CPU reports native bf16."""
    expected = "bf16" if training.cpu_supports_bf16() else "fp32"
    assert training.resolve_precision("auto", "cpu") == expected


def test_explicit_bf16_without_support_warns(monkeypatch):
    """bf16 on a CPU without native bf16 is kept (emulated) with a UserWarning."""
    monkeypatch.setattr(training, "cpu_supports_bf16", lambda: False)
    with pytest.warns(UserWarning, match="emulates"):
        assert training.resolve_precision("bf16", "cpu") == "bf16"


def test_cpu_bf16_detection_reads_cpu_flags(monkeypatch, tmp_path):
    """cpu_supports_bf16 finds avx512_bf16 or amx_bf16 among /proc/cpuinfo's flags."""
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    fake = tmp_path / "cpuinfo"
    monkeypatch.setattr(training, "CPUINFO", str(fake))
    for flags, expected in [
        ("fpu avx2 fma", False),
        ("fpu avx512f avx512_bf16", True),
        ("fpu amx_bf16 amx_tile", True),
    ]:
        fake.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        assert training.cpu_supports_bf16() is expected
    fake.unlink()  # No cpuinfo (not Linux): assume no native bf16.
    assert training.cpu_supports_bf16() is False


def test_device_and_precision_errors():
    """Unknown names, and cuda without a GPU, are named errors."""
    with pytest.raises(PathMNISTError, match="tpu"):
        training.resolve_device("tpu")
    with pytest.raises(PathMNISTError, match="fp16"):
        training.resolve_precision("fp16", "cpu")
    assert training.resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert training.resolve_device("auto") == torch.device("cpu")
        with pytest.raises(PathMNISTError, match="no CUDA GPU"):
            training.resolve_device("cuda")


# One epoch and evaluation.


def test_evaluate_gives_softmax_probabilities(splits):
    """evaluate's probs are torch.softmax of the eval-mode logits (rows sum to 1), its
    loss the mean cross-entropy, its accuracy that of the argmax; train mode is kept."""
    _, val = splits
    torch.manual_seed(0)
    model = tiny_net(3)
    _, eval_tf = build_transforms((0.5,) * 3, (0.25,) * 3)
    loader = BatchLoader(val, 10, shuffle=False, transform=eval_tf)
    model.train()
    ev = training.evaluate(model, loader)
    assert model.training
    model.eval()
    with torch.no_grad():
        logits = model(eval_tf(torch.from_numpy(val.images)))
    expected = torch.softmax(logits, dim=1).numpy()
    np.testing.assert_allclose(ev.probs, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ev.probs.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(ev.labels, val.labels)
    labels = torch.from_numpy(val.labels)
    assert math.isclose(ev.loss, nn.functional.cross_entropy(logits, labels).item(), rel_tol=1e-5)
    assert ev.accuracy == (logits.argmax(1) == labels).sum().item() / len(labels)
    assert 0.0 <= ev.macro_auc <= 1.0


def test_train_one_epoch_reports_mean_loss_and_accuracy(splits):
    """train_one_epoch returns a finite loss and an accuracy in [0, 1], stepping per batch."""
    train, _ = splits
    torch.manual_seed(0)
    model = tiny_net(3)
    train_tf, _ = build_transforms((0.5,) * 3, (0.25,) * 3)
    loader = BatchLoader(train, 8, transform=train_tf)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model[0].weight.detach().clone()
    loss, acc = training.train_one_epoch(model, loader, opt)
    assert math.isfinite(loss) and 0.0 <= acc <= 1.0
    assert not torch.equal(before, model[0].weight)


# fit: the run directory, determinism, resume, early stopping.


def test_fit_writes_the_run_directory(splits, tiny, tmp_path):
    """history.csv (the contract's columns), config.json, last.pt and best.pt; no temp
    files; load_checkpoint rebuilds the returned (best) model and its eval transform."""
    train, val = splits
    history = training.fit(config(epochs=2), train, val, tmp_path, quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best.pt",
        "config.json",
        "history.csv",
        "last.pt",
    ]
    header = (tmp_path / "history.csv").read_text().splitlines()[0]
    assert header == "epoch,train_loss,train_acc,val_loss,val_acc,val_auc,lr,seconds"
    assert [r["epoch"] for r in history.rows] == [1, 2]
    info = json.loads((tmp_path / "config.json").read_text())
    assert info["config"] == config(epochs=2).to_dict()
    assert info["num_classes"] == 3 and info["class_names"] == list(train.class_names)
    assert len(info["mean"]) == len(info["std"]) == 3
    assert History.from_csv(tmp_path / "history.csv").rows == history.rows

    model, cfg, eval_tf, names = training.load_checkpoint(tmp_path / "best.pt")
    assert cfg == config(epochs=2) and names == train.class_names and not model.training
    assert_same_weights(model, history.model)
    x = torch.from_numpy(val.images[:5])
    with torch.no_grad():
        assert torch.equal(model(eval_tf(x)), history.model(history.eval_transform(x)))


def test_training_loss_falls(splits, tiny, tmp_path):
    """Over 3 epochs on a learnable set the training loss falls and val accuracy beats chance."""
    train, val = splits
    rows = training.fit(config(), train, val, tmp_path, quiet=True).rows
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert max(r["val_acc"] for r in rows) > 0.5  # Chance is 1/3.


def test_same_seed_same_history(splits, tiny, tmp_path):
    """Two runs with one seed write the same history.csv but for `seconds`; another seed
    does not."""
    train, val = splits
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        training.fit(
            config(epochs=2, seed=seed, augment=True), train, val, tmp_path / name, quiet=True
        )
    assert comparable(tmp_path / "a" / "history.csv") == comparable(tmp_path / "b" / "history.csv")
    assert comparable(tmp_path / "a" / "history.csv") != comparable(tmp_path / "c" / "history.csv")


def resume_case(train, val, tmp_path, cfg, monkeypatch):
    """Run `cfg` uninterrupted; run it again, interrupted (KeyboardInterrupt) after epoch 2,
    then resumed. Return both histories."""
    full = training.fit(cfg, train, val, tmp_path / "full", quiet=True)
    real_save = checkpoints.save_epoch

    def save_then_interrupt(out_dir, info, model, opt, sched, stopper, rows, stopped):
        real_save(out_dir, info, model, opt, sched, stopper, rows, stopped)
        if rows[-1]["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints, "save_epoch", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        training.fit(cfg, train, val, tmp_path / "cut", quiet=True)
    monkeypatch.setattr(checkpoints, "save_epoch", real_save)
    torch.manual_seed(12345)  # Disturb the global RNGs: resume must restore them.
    np.random.seed(12345)  # noqa: NPY002 - the global generator is what resume restores.
    random.seed(12345)
    resumed = training.fit(cfg, train, val, tmp_path / "cut", resume=True, quiet=True)
    return full, resumed


def test_resume_is_bit_identical(splits, tiny, tmp_path, monkeypatch):
    """Interrupted after epoch 2 of 4 and resumed, the run ends with the same weights
    (every state_dict tensor), the same last.pt weights and the same history."""
    train, val = splits
    cfg = config(epochs=4, step_size=1, gamma=0.5, augment=True, patience=10)
    full, resumed = resume_case(train, val, tmp_path, cfg, monkeypatch)
    assert_same_weights(full.model, resumed.model)
    last = [checkpoints.load(tmp_path / d / "last.pt")["model"] for d in ("full", "cut")]
    assert all(torch.equal(last[0][k], last[1][k]) for k in last[0])
    assert comparable(tmp_path / "full" / "history.csv") == comparable(
        tmp_path / "cut" / "history.csv"
    )
    assert [r["lr"] for r in resumed.rows] == [1e-2, 5e-3, 2.5e-3, 1.25e-3]


def test_resume_with_more_epochs_continues(splits, tiny, tmp_path):
    """A finished 2-epoch run resumed with epochs=4 equals a 4-epoch run (epochs may change)."""
    train, val = splits
    full = training.fit(config(epochs=4, patience=10), train, val, tmp_path / "a", quiet=True)
    training.fit(config(epochs=2, patience=10), train, val, tmp_path / "b", quiet=True)
    more = training.fit(
        config(epochs=4, patience=10), train, val, tmp_path / "b", resume=True, quiet=True
    )
    assert_same_weights(full.model, more.model)
    assert [r["epoch"] for r in more.rows] == [1, 2, 3, 4]


def test_resume_of_a_finished_run_does_not_train(splits, tiny, tmp_path, monkeypatch):
    """Resuming a run that ran all its epochs returns its history and best model untouched."""
    train, val = splits
    first = training.fit(config(epochs=2), train, val, tmp_path, quiet=True)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(training, "train_one_epoch", no_training)
    again = training.fit(config(epochs=2), train, val, tmp_path, resume=True, quiet=True)
    assert again.rows == first.rows and again.best_epoch == first.best_epoch
    assert_same_weights(first.model, again.model)


def test_resume_errors(splits, tiny, tmp_path):
    """No last.pt: 'nothing to resume'; a changed lr or other data: named refusals;
    a corrupt last.pt: a PathMNISTError, not a pickle traceback."""
    train, val = splits
    with pytest.raises(PathMNISTError, match=r"nothing to resume.*drop --resume"):
        training.fit(config(), train, val, tmp_path, resume=True)
    training.fit(config(epochs=1), train, val, tmp_path, quiet=True)
    with pytest.raises(PathMNISTError, match=r"lr=0\.01 but this one asks for lr=0\.5"):
        training.fit(config(epochs=1, lr=0.5), train, val, tmp_path, resume=True)
    with pytest.raises(PathMNISTError, match="this data differs"):
        training.fit(config(epochs=1), signal_set(41), val, tmp_path, resume=True)
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(PathMNISTError, match="not a readable checkpoint"):
        training.fit(config(epochs=1), train, val, tmp_path, resume=True)


def test_early_stopping_restores_the_best_weights(splits, tiny, tmp_path, monkeypatch):
    """With val loss 1.0, 0.5, 0.8, 0.9 and patience 2, training stops after epoch 4;
    the returned model holds epoch 2's weights (those in best.pt), not the last ones."""
    train, val = splits
    real_evaluate = training.evaluate
    series = iter([1.0, 0.5, 0.8, 0.9, 0.95, 1.0])

    def scripted(model, loader, precision="fp32"):
        return dataclasses.replace(real_evaluate(model, loader, precision), loss=next(series))

    monkeypatch.setattr(training, "evaluate", scripted)
    history = training.fit(config(epochs=6, patience=2), train, val, tmp_path, quiet=True)
    assert history.stopped_early and history.best_epoch == 2 and len(history.rows) == 4
    best = checkpoints.load(tmp_path / "best.pt")
    last = checkpoints.load(tmp_path / "last.pt")
    assert best["epoch"] == 2 and last["stopped_early"]
    state = history.model.state_dict()
    assert all(torch.equal(state[k], best["model"][k]) for k in state)
    assert not all(torch.equal(state[k], last["model"][k]) for k in state)


def test_bf16_training_runs_on_cpu(splits, tiny, tmp_path):
    """precision bf16 (autocast, channels_last) trains with finite float32 losses."""
    train, val = splits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Emulated bf16 on this CPU.
        history = training.fit(config(epochs=1, precision="bf16"), train, val, tmp_path, quiet=True)
    assert all(math.isfinite(history.rows[0][k]) for k in ("train_loss", "val_loss"))


def test_fit_input_errors(splits, tmp_path):
    """Bad configs, mismatched class names and too-small splits are named errors."""
    train, val = splits
    with pytest.raises(PathMNISTError, match="lr="):
        training.fit(config(lr=-1.0), train, val, tmp_path)
    other = ImageSet(val.images, val.labels, ("a", "b", "c"))
    with pytest.raises(PathMNISTError, match="same file"):
        training.fit(config(), train, other, tmp_path)
    with pytest.raises(PathMNISTError, match="at least 2"):
        training.fit(config(), signal_set(1), val, tmp_path)


# Checkpoint files.


def test_load_checkpoint_errors(tmp_path):
    """A missing file, garbage bytes and a torch file of another program are named errors."""
    with pytest.raises(PathMNISTError, match="no checkpoint"):
        training.load_checkpoint(tmp_path / "best.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(PathMNISTError, match="not a readable checkpoint"):
        training.load_checkpoint(tmp_path / "junk.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(PathMNISTError, match="not a pathmnist checkpoint"):
        training.load_checkpoint(tmp_path / "other.pt")
    checkpoints.save({"config": {}}, tmp_path / "partial.pt")
    with pytest.raises(PathMNISTError, match="lacks"):
        training.load_checkpoint(tmp_path / "partial.pt")


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    """After save and load (weights_only), set_rng_state replays torch's, numpy's and
    Python's next random numbers; no temp file is left."""
    checkpoints.seed_everything(7)
    checkpoints.save({"rng": checkpoints.rng_state()}, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.random(3), random.random())  # noqa: NPY002
    checkpoints.seed_everything(99)
    checkpoints.set_rng_state(checkpoints.load(tmp_path / "rng.pt")["rng"])
    got = (torch.rand(3), np.random.random(3), random.random())  # noqa: NPY002
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert got[2] == expected[2]
    assert [p.name for p in tmp_path.iterdir()] == ["rng.pt"]


def test_history_csv_round_trip_is_exact(tmp_path):
    """to_csv then from_csv gives back the same floats (repr round-trips), NaN included,
    and best_epoch follows the monitor."""
    rows = [
        {
            "epoch": e,
            "train_loss": 1 / 3 / e,
            "train_acc": 0.1 * e,
            "val_loss": [0.7, 0.2, 0.4][e - 1],
            "val_acc": [0.5, 0.6, 0.9][e - 1],
            "val_auc": float("nan"),
            "lr": 1e-3,
            "seconds": 0.1,
        }
        for e in (1, 2, 3)
    ]
    History(rows).to_csv(tmp_path / "h.csv")
    back = History.from_csv(tmp_path / "h.csv")
    assert back.best_epoch == 2 and History.from_csv(tmp_path / "h.csv", "val_acc").best_epoch == 3
    for a, b in zip(rows, back.rows, strict=True):
        assert a.keys() == b.keys()
        assert all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(PathMNISTError, match="header"):
        History.from_csv(tmp_path / "x.csv")


# The real ResNet-18.


@pytest.mark.slow
def test_resnet18_resume_is_bit_identical(tmp_path, monkeypatch):
    """With the real ResNet-18 at 32x32 (Adam, BatchNorm, StepLR every epoch), a run
    interrupted after epoch 2 of 4 and resumed ends with bit-identical weights."""
    train, val = signal_set(16, seed=0, size=32), signal_set(8, seed=1, size=32)
    cfg = config(epochs=4, step_size=1, lr=1e-3, patience=10)
    full, resumed = resume_case(train, val, tmp_path, cfg, monkeypatch)
    assert_same_weights(full.model, resumed.model)
    assert full.rows[-1]["train_loss"] < full.rows[0]["train_loss"]
