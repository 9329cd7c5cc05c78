"""The training loop on tiny synthetic sets: the loss falls, the run directory holds what
the contract names, the same seed gives the same history, a resumed run is bit-identical
to an uninterrupted one, early stopping restores the best weights, evaluate's
probabilities are the softmax of the logits (and TTA the mean over the 8 dihedral views),
the classifier stays float32 under bf16, a NaN loss stops the run, a folder holding a run
is refused unless resumed or overwritten, and every user error is a PathMNISTError.

Most tests swap ResNet-18 for a tiny conv + BatchNorm net (registered under the same
name), since they test the loop, not the model; the ones marked slow run the real one.
The checkpoint files themselves are tested in tests/test_checkpoints.py."""

import csv
import dataclasses
import json
import math
import random
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from pathmnist.augment import dihedral, mixing
from pathmnist.augment.transforms import build_transforms
from pathmnist.config import TrainConfig
from pathmnist.data.dataset import ImageSet
from pathmnist.data.loader import BatchLoader
from pathmnist.errors import PathMNISTError
from pathmnist.training import checkpoints, inference, loop, prepare, resume
from pathmnist.training.fit import fit
from pathmnist.training.history import HISTORY_COLUMNS, History

CPU = {"device": "cpu", "precision": "fp32"}


def signal_set(n, seed=0, size=16, k=3):
    """n images, k classes: class c has channel c brightened, the rest is noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % k
    images = rng.integers(0, 100, (n, size, size, 3))
    images[np.arange(n), :, :, labels % 3] += 120
    return ImageSet(images.astype(np.uint8), labels, tuple(f"class {i}" for i in range(k)))


class TinyNet(nn.Module):
    """conv -> BatchNorm -> ReLU -> global mean -> fc: the loop's stand-in for ResNet,
    with ResNet's split into `features` (B, 8) and the classifier `fc`."""

    def __init__(self, num_classes=9, stem="imagenet", zero_init_residual=False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, num_classes)

    def features(self, x):
        return torch.relu(self.bn1(self.conv1(x))).mean(dim=(2, 3))  # (B, 8)

    def forward(self, x):
        return self.fc(self.features(x))  # (B, C)


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


# Building blocks: optimizer, forward, one epoch, evaluation.


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_build_optimizer_is_torchs_with_the_configs_settings(optimizer):
    """Adam(lr, weight_decay) or SGD(lr, momentum, weight_decay) over every parameter;
    fused on the CPU (torch's one-pass kernels, as on CUDA)."""
    model = TinyNet(3)
    c = config(optimizer=optimizer, lr=0.03, weight_decay=1e-3, momentum=0.8)
    opt = prepare.build_optimizer(c, model)
    group = opt.param_groups[0]
    assert type(opt) is (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)
    assert (group["lr"], group["weight_decay"]) == (0.03, 1e-3) and group["fused"] is True
    assert group["params"] == list(model.parameters())
    if optimizer == "sgd":
        assert group["momentum"] == 0.8


def test_forward_in_fp32_equals_the_models_forward():
    """forward(model, x, "fp32") is model(x): features then fc."""
    torch.manual_seed(0)
    model, x = TinyNet(3).eval(), torch.rand(4, 3, 8, 8)
    assert torch.equal(loop.forward(model, x, "fp32"), model(x))


def test_forward_in_bf16_keeps_the_classifier_in_float32():
    """Under bf16 the features are computed in bfloat16 but fc runs outside autocast:
    the logits are float32, fc's input is the bf16 features upcast, and they stay within
    bf16 rounding (rel. 2**-7 per operand) of the fp32 logits."""
    torch.manual_seed(0)
    model, x = TinyNet(3).eval(), torch.rand(4, 3, 8, 8)
    seen = {}
    model.fc.register_forward_hook(lambda m, args, out: seen.update(x=args[0], out=out))
    logits = loop.forward(model, x, "bf16")
    assert logits.dtype == torch.float32 and seen["out"].dtype == torch.float32
    assert seen["x"].dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16_features = model.features(x)
    assert bf16_features.dtype == torch.bfloat16
    assert torch.equal(seen["x"], bf16_features.float())
    torch.testing.assert_close(logits, model(x), rtol=0.05, atol=0.05)


def test_train_one_epoch_reports_mean_loss_and_accuracy(splits):
    """train_one_epoch returns a finite loss and an accuracy in [0, 1], stepping the
    weights; an empty loader is a named error."""
    train, _ = splits
    torch.manual_seed(0)
    model = TinyNet(3)
    train_tf, _ = build_transforms((0.5,) * 3, (0.25,) * 3)
    loader = BatchLoader(train, 8, transform=train_tf)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.conv1.weight.detach().clone()
    loss, acc = loop.train_one_epoch(model, loader, opt)
    assert math.isfinite(loss) and 0.0 <= acc <= 1.0
    assert not torch.equal(before, model.conv1.weight)
    empty = BatchLoader(signal_set(3), 8, transform=train_tf, drop_last=True)
    with pytest.raises(PathMNISTError, match="yielded no batches; use a smaller batch size"):
        loop.train_one_epoch(model, empty, opt)


def test_evaluate_gives_softmax_probabilities(splits):
    """evaluate's probs are torch.softmax of the eval-mode logits (rows sum to 1), its
    loss the mean cross-entropy, its accuracy that of the argmax; train mode is kept."""
    _, val = splits
    torch.manual_seed(0)
    model = TinyNet(3)
    _, eval_tf = build_transforms((0.5,) * 3, (0.25,) * 3)
    loader = BatchLoader(val, 10, shuffle=False, transform=eval_tf)
    model.train()
    ev = loop.evaluate(model, loader)
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


def test_dihedral_views_are_the_eight_symmetries():
    """The 8 views are rot90 k = 0..3 and the same after a left-right flip, all distinct
    on an asymmetric image; a non-square batch is refused."""
    x = torch.arange(9.0).view(1, 1, 3, 3).expand(2, 3, 3, 3)
    views = dihedral.views(x)
    expected = [torch.rot90(x, k, dims=(2, 3)) for k in range(4)]
    expected += [torch.flip(v, dims=(3,)) for v in expected]
    assert all(torch.equal(a, b) for a, b in zip(views, expected, strict=True))
    assert len({tuple(v[0, 0].flatten().tolist()) for v in views}) == 8
    with pytest.raises(PathMNISTError, match="square images, got 3x4; drop --tta"):
        dihedral.views(torch.zeros(1, 3, 3, 4))


def test_tta_is_the_mean_softmax_over_the_eight_views(splits):
    """evaluate(tta=True) gives each image the mean of the softmax over its 8 views, the
    loss is the NLL of that mean, and rows still sum to 1."""
    _, val = splits
    torch.manual_seed(1)
    model = TinyNet(3).eval()
    _, eval_tf = build_transforms((0.5,) * 3, (0.25,) * 3)
    ev = loop.evaluate(model, BatchLoader(val, 7, shuffle=False, transform=eval_tf), tta=True)
    x = eval_tf(torch.from_numpy(val.images))
    with torch.no_grad():
        views = [torch.rot90(x, k, dims=(2, 3)) for k in range(4)]
        views += [torch.flip(v, dims=(3,)) for v in views]
        p = torch.stack([model(v).softmax(1) for v in views]).mean(0)
    np.testing.assert_allclose(ev.probs, p.numpy(), rtol=1e-5, atol=1e-7)
    nll = -p[torch.arange(len(p)), torch.from_numpy(val.labels)].log().mean().item()
    assert math.isclose(ev.loss, nll, rel_tol=1e-5)
    np.testing.assert_allclose(ev.probs.sum(1), 1.0, rtol=1e-6)


def test_predictor_equals_evaluate_on_a_loader(splits):
    """Predictor.evaluate runs evaluate over the whole split in order on the config's
    device, and its logits are the ones behind its probabilities."""
    _, val = splits
    torch.manual_seed(0)
    model = TinyNet(3).eval()
    _, eval_tf = build_transforms((0.5,) * 3, (0.25,) * 3)
    a = loop.Predictor.for_config(model, eval_tf, config()).evaluate(val)
    b = loop.evaluate(model, BatchLoader(val, 5, shuffle=False, transform=eval_tf))
    np.testing.assert_allclose(a.probs, b.probs, rtol=1e-6, atol=1e-7)
    assert a.accuracy == b.accuracy and math.isclose(a.loss, b.loss, rel_tol=1e-6)
    softmax = torch.from_numpy(a.logits).softmax(1).numpy()
    np.testing.assert_allclose(softmax, a.probs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("tta", [False, True])
def test_predictor_applies_the_runs_tta(splits, tta):
    """A predictor built from a TTA config predicts with the 8 views, one from a plain
    config without: the same probabilities as evaluate with that tta, and logits whose
    softmax gives them (under TTA, the log of the mean softmax)."""
    _, val = splits
    torch.manual_seed(0)
    model = TinyNet(3).eval()
    _, eval_tf = build_transforms((0.5,) * 3, (0.25,) * 3)
    ev = loop.Predictor.for_config(model, eval_tf, config(tta=tta)).evaluate(val)
    ref = loop.evaluate(model, BatchLoader(val, 7, shuffle=False, transform=eval_tf), tta=tta)
    np.testing.assert_allclose(ev.probs, ref.probs, rtol=1e-5, atol=1e-7)
    softmax = torch.from_numpy(ev.logits).softmax(1).numpy()
    np.testing.assert_allclose(softmax, ev.probs, rtol=1e-5, atol=1e-6)


def test_fit_returns_a_predictor_with_the_runs_settings(splits, tiny, tmp_path):
    """fit resolves device and precision once and hands them on in history.predictor."""
    train, val = splits
    history = fit(config(epochs=1, tta=True), train, val, tmp_path, quiet=True)
    p = history.predictor
    assert p.model is history.model and p.tta is True
    assert (p.device.type, p.precision) == (
        history.rows[-1]["device"],
        history.rows[-1]["precision"],
    )


def test_evaluate_on_an_empty_loader_is_named():
    """A split with no images cannot be evaluated."""
    loader = BatchLoader(signal_set(2), 4, drop_last=True)
    with pytest.raises(PathMNISTError, match="empty loader"):
        loop.evaluate(TinyNet(3), loader)


def test_build_mix_picks_what_the_config_asks_for():
    """No mixing by default; MixUp or CutMix alone; with both, one of them per batch,
    each returning (x, soft targets that sum to 1)."""
    assert mixing.build_mix(0.0, 0.0, 3) is None
    x, y = torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    for changes in ({"mixup": 0.4}, {"cutmix": 1.0}, {"mixup": 0.4, "cutmix": 1.0}):
        mix = mixing.build_mix(changes.get("mixup", 0.0), changes.get("cutmix", 0.0), 3)
        mixed, target = mix(x, y, torch.Generator().manual_seed(0))
        assert mixed.shape == x.shape and target.shape == (6, 3)
        torch.testing.assert_close(target.sum(1), torch.ones(6))


# fit: the run directory, determinism, resume, early stopping.


def test_fit_writes_the_run_directory(splits, tiny, tmp_path):
    """history.csv (the contract's columns), config.json, last.pt and best.pt (and the
    run mark, its kind and id; the lock file is gone); no temporary files; load_checkpoint
    rebuilds the returned (best) model and its eval transform."""
    train, val = splits
    history = fit(config(epochs=2), train, val, tmp_path, quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".pathmnist-run.json", "best.pt", "config.json", "history.csv", "last.pt",
    ]  # fmt: skip
    header = (tmp_path / "history.csv").read_text().splitlines()[0]
    assert header == ",".join(HISTORY_COLUMNS)
    assert [r["epoch"] for r in history.rows] == [1, 2]
    assert [(r["device"], r["precision"]) for r in history.rows] == [("cpu", "fp32")] * 2
    info = json.loads((tmp_path / "config.json").read_text())
    assert info["config"] == config(epochs=2).to_dict()
    assert info["num_classes"] == 3 and info["class_names"] == list(train.class_names)
    assert len(info["mean"]) == len(info["std"]) == 3 and info["stain"] is None
    assert History.from_csv(tmp_path / "history.csv").rows == history.rows

    model, cfg, eval_tf, names = inference.load_checkpoint(tmp_path / "best.pt")
    assert cfg == config(epochs=2) and names == train.class_names and not model.training
    assert_same_weights(model, history.model)
    x = torch.from_numpy(val.images[:5])
    with torch.no_grad():
        assert torch.equal(model(eval_tf(x)), history.model(history.eval_transform(x)))


def test_training_loss_falls(splits, tiny, tmp_path):
    """Over 3 epochs on a learnable set the training loss falls and val accuracy beats chance."""
    train, val = splits
    rows = fit(config(), train, val, tmp_path, quiet=True).rows
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert max(r["val_acc"] for r in rows) > 0.5  # Chance is 1/3.


def test_same_seed_same_history(splits, tiny, tmp_path):
    """Two runs with one seed write the same history.csv but for `seconds`; another seed
    does not."""
    train, val = splits
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        cfg = config(epochs=2, seed=seed, augment=("flips",))
        fit(cfg, train, val, tmp_path / name, quiet=True)
    assert comparable(tmp_path / "a" / "history.csv") == comparable(tmp_path / "b" / "history.csv")
    assert comparable(tmp_path / "a" / "history.csv") != comparable(tmp_path / "c" / "history.csv")


@pytest.mark.parametrize(
    "changes",
    [{"loss": "weighted"}, {"loss": "focal", "label_smoothing": 0.1}, {"mixup": 0.4},
     {"cutmix": 1.0, "tta": True}, {"augment": ("flips", "color"), "size": 12}],
)  # fmt: skip
def test_fit_runs_with_every_recipe_option(splits, tiny, tmp_path, changes):
    """Each loss, mixing, TTA and augmentation option trains to finite losses and a
    probability-valued accuracy."""
    train, val = splits
    rows = fit(config(epochs=1, **changes), train, val, tmp_path, quiet=True).rows
    assert math.isfinite(rows[0]["train_loss"]) and math.isfinite(rows[0]["val_loss"])
    assert 0.0 <= rows[0]["val_acc"] <= 1.0


def resume_case(train, val, tmp_path, cfg, monkeypatch):
    """Run `cfg` uninterrupted; run it again, interrupted (KeyboardInterrupt) after epoch 2,
    then resumed. Return both histories."""
    full = fit(cfg, train, val, tmp_path / "full", quiet=True)
    real_save = resume.save_epoch

    def save_then_interrupt(out_dir, info, model, opt, sched, stopper, rows, stopped):
        real_save(out_dir, info, model, opt, sched, stopper, rows, stopped)
        if rows[-1]["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(resume, "save_epoch", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, train, val, tmp_path / "cut", quiet=True)
    monkeypatch.setattr(resume, "save_epoch", real_save)
    torch.manual_seed(12345)  # Disturb the global RNGs: resume must restore them.
    np.random.seed(12345)  # noqa: NPY002 - the global generator is what resume restores.
    random.seed(12345)
    resumed = fit(cfg, train, val, tmp_path / "cut", resume=True, quiet=True)
    return full, resumed


def test_resume_is_bit_identical(splits, tiny, tmp_path, monkeypatch):
    """Interrupted after epoch 2 of 4 and resumed, the run ends with the same weights
    (every state_dict tensor), the same last.pt weights and the same history."""
    train, val = splits
    cfg = config(epochs=4, step_size=1, gamma=0.5, augment=("flips",), patience=10)
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
    full = fit(config(epochs=4, patience=10), train, val, tmp_path / "a", quiet=True)
    fit(config(epochs=2, patience=10), train, val, tmp_path / "b", quiet=True)
    more = fit(config(epochs=4, patience=10), train, val, tmp_path / "b", resume=True, quiet=True)
    assert_same_weights(full.model, more.model)
    assert [r["epoch"] for r in more.rows] == [1, 2, 3, 4]


def test_resume_of_a_finished_run_does_not_train(splits, tiny, tmp_path, monkeypatch):
    """Resuming a run that ran all its epochs returns its history and best model untouched."""
    train, val = splits
    first = fit(config(epochs=2), train, val, tmp_path, quiet=True)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(loop, "train_one_epoch", no_training)
    again = fit(config(epochs=2), train, val, tmp_path, resume=True, quiet=True)
    assert again.rows == first.rows and again.best_epoch == first.best_epoch
    assert_same_weights(first.model, again.model)


def test_resume_refusals(splits, tiny, tmp_path):
    """No last.pt: 'nothing to resume'; a changed lr or other data: named refusals that
    leave the run's files as they were."""
    train, val = splits
    with pytest.raises(PathMNISTError, match=r"nothing to resume.*drop --resume"):
        fit(config(), train, val, tmp_path, resume=True)
    fit(config(epochs=1), train, val, tmp_path, quiet=True)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(PathMNISTError, match=r"lr=0\.01 but this one asks for lr=0\.5"):
        fit(config(epochs=1, lr=0.5), train, val, tmp_path, resume=True)
    with pytest.raises(PathMNISTError, match="trained on other data"):
        fit(config(epochs=1), signal_set(41), val, tmp_path, resume=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_folder_holding_a_run_is_refused_unless_resumed_or_overwritten(splits, tiny, tmp_path):
    """A second fit into the same folder is refused before anything changes; overwrite
    replaces the run and keeps the user's own files."""
    train, val = splits
    fit(config(epochs=1), train, val, tmp_path, quiet=True)
    (tmp_path / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(PathMNISTError, match="already holds a run of train; pass --resume"):
        fit(config(epochs=2), train, val, tmp_path, quiet=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    history = fit(config(epochs=2), train, val, tmp_path, quiet=True, overwrite=True)
    assert len(history.rows) == 2 and (tmp_path / "notes.txt").read_text() == "mine"
    assert len(History.from_csv(tmp_path / "history.csv").rows) == 2


def test_early_stopping_restores_the_best_weights(splits, tiny, tmp_path, monkeypatch):
    """With val loss 1.0, 0.5, 0.8, 0.9 and patience 2, training stops after epoch 4;
    the returned model holds epoch 2's weights (those in best.pt), not the last ones."""
    train, val = splits
    real_evaluate = loop.evaluate
    series = iter([1.0, 0.5, 0.8, 0.9, 0.95, 1.0])

    def scripted(model, loader, precision="fp32", tta=False, features=None):
        ev = real_evaluate(model, loader, precision, tta=tta, features=features)
        return dataclasses.replace(ev, loss=next(series))

    monkeypatch.setattr(loop, "evaluate", scripted)
    history = fit(config(epochs=6, patience=2), train, val, tmp_path, quiet=True)
    assert history.stopped_early and history.best_epoch == 2 and len(history.rows) == 4
    best = checkpoints.load(tmp_path / "best.pt")
    last = checkpoints.load(tmp_path / "last.pt")
    assert best["epoch"] == 2 and last["stopped_early"] and last["epoch"] == 4
    assert last["early_stopping"]["best_weights"] is None  # They live in best.pt only.
    state = history.model.state_dict()
    assert all(torch.equal(state[k], best["model"][k]) for k in state)
    assert not all(torch.equal(state[k], last["model"][k]) for k in state)


def test_a_nan_loss_stops_with_one_sentence(splits, tiny, tmp_path, monkeypatch):
    """A NaN training loss in epoch 2 raises a PathMNISTError that suggests a lower lr;
    history.csv and best.pt still hold epoch 1."""
    train, val = splits
    real = loop.train_one_epoch
    calls = []

    def nan_in_epoch_2(*args, **kwargs):
        calls.append(1)
        loss, acc = real(*args, **kwargs)
        return (math.nan if len(calls) == 2 else loss), acc

    monkeypatch.setattr(loop, "train_one_epoch", nan_in_epoch_2)
    with pytest.raises(PathMNISTError, match=r"loss became nan in epoch 2.*lower --lr"):
        fit(config(epochs=3), train, val, tmp_path, quiet=True)
    assert len(History.from_csv(tmp_path / "history.csv").rows) == 1
    assert checkpoints.load(tmp_path / "best.pt")["epoch"] == 1


def test_bf16_training_runs_on_cpu(splits, tiny, tmp_path):
    """precision bf16 (autocast, channels_last) trains with finite float32 losses and
    records bf16 in history.csv."""
    train, val = splits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Emulated bf16 on this CPU.
        history = fit(config(epochs=1, precision="bf16"), train, val, tmp_path, quiet=True)
    assert all(math.isfinite(history.rows[0][k]) for k in ("train_loss", "val_loss"))
    assert history.rows[0]["precision"] == "bf16"


def test_fit_input_errors(splits, tmp_path):
    """Bad configs, mismatched class names and too-small splits are named errors, raised
    before the folder is made."""
    train, val = splits
    out = tmp_path / "run"
    with pytest.raises(PathMNISTError, match="lr="):
        fit(config(lr=-1.0), train, val, out)
    other = ImageSet(val.images, val.labels, ("a", "b", "c"))
    with pytest.raises(PathMNISTError, match="same file"):
        fit(config(), train, other, out)
    with pytest.raises(PathMNISTError, match="at least 2"):
        fit(config(), signal_set(1), val, out)
    with pytest.raises(PathMNISTError, match="as an ImageSet"):
        fit(config(), train.images, val, out)
    assert not out.exists()


# On a CUDA GPU.


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fit_trains_and_records_the_device(splits, tiny, tmp_path):
    """On a GPU (auto precision) the run trains to finite losses and history.csv says
    cuda; the best weights reload on the CPU."""
    train, val = splits
    history = fit(config(epochs=2, device="cuda", precision="auto"), train, val,
                           tmp_path, quiet=True)  # fmt: skip
    assert {r["device"] for r in history.rows} == {"cuda"}
    assert all(math.isfinite(r["train_loss"]) for r in history.rows)
    model = inference.load_checkpoint(tmp_path / "best.pt").model
    assert next(model.parameters()).device.type == "cpu"


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
