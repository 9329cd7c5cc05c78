"""training.resume: a best.pt copied over last.pt, a best.pt of another epoch, other data of
the same sizes and fewer epochs than were done are each refused with one sentence; a
resume may change the precision, and history.csv records it per epoch."""

import math
import shutil
import warnings

import pytest

# Fixtures shared with test_checkpoints: pytest passes them by name (F811 is expected).
# ruff: noqa: F811
from test_checkpoints import one_message, splits  # noqa: F401 - fixtures
from test_fit import config, signal_set

from pathmnist.errors import PathMNISTError
from pathmnist.training import checkpoints
from pathmnist.training.fit import fit
from pathmnist.training.history import History


def test_best_pt_copied_over_last_pt_is_refused_on_resume(splits, tiny, tmp_path):
    """best.pt is a valid checkpoint but not a last.pt: resuming from it names the likely
    mistake in one sentence."""
    train, val = splits
    fit(config(epochs=1), train, val, tmp_path, quiet=True)
    shutil.copyfile(tmp_path / "best.pt", tmp_path / "last.pt")
    with pytest.raises(PathMNISTError) as info:
        fit(config(epochs=2), train, val, tmp_path, resume=True, quiet=True)
    message = one_message(info)
    assert "so it is not a last.pt (a best.pt copied over it?)" in message
    assert "lacks optimizer, scheduler, early_stopping, rng, rows" in message


def test_a_best_pt_of_another_epoch_is_refused_on_resume(splits, tiny, tmp_path):
    """last.pt records its best epoch; a best.pt from another epoch does not fit."""
    train, val = splits
    fit(config(epochs=2, patience=5), train, val, tmp_path / "a", quiet=True)
    fit(config(epochs=1), train, val, tmp_path / "b", quiet=True)
    saved = checkpoints.load(tmp_path / "a" / "last.pt")
    best_epoch = saved["early_stopping"]["best_epoch"]
    other = checkpoints.load(tmp_path / "b" / "best.pt")
    other["run"] = saved["run"]  # a's own run id: only its epoch differs.
    checkpoints.save({**other, "epoch": best_epoch + 1}, tmp_path / "a" / "best.pt")
    with pytest.raises(PathMNISTError, match=rf"is from epoch {best_epoch + 1}, not the best"):
        fit(config(epochs=3, patience=5), train, val, tmp_path / "a", resume=True)


def test_resume_onto_other_data_of_the_same_sizes_is_refused(splits, tiny, tmp_path):
    """Other images with the same split sizes and shapes (another seed of the synthetic
    set, say) are other data: the resume is refused and the run is left as it was."""
    train, val = splits
    fit(config(epochs=1), train, val, tmp_path, quiet=True)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    lookalike = signal_set(len(train), seed=5)
    assert lookalike.images.shape == train.images.shape
    for new_train, new_val in ((lookalike, val), (train, signal_set(len(val), seed=6))):
        with pytest.raises(PathMNISTError) as info:
            fit(config(epochs=2), new_train, new_val, tmp_path, resume=True)
        assert "it was trained on other data" in one_message(info)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_resume_with_fewer_epochs_than_done_is_refused(splits, tiny, tmp_path):
    """A run that trained 2 epochs cannot be resumed with --epochs 1."""
    train, val = splits
    fit(config(epochs=2, patience=5), train, val, tmp_path, quiet=True)
    with pytest.raises(PathMNISTError) as info:
        fit(config(epochs=1, patience=5), train, val, tmp_path, resume=True)
    message = one_message(info)
    assert "with epochs=1: it has already trained 2 epochs; pass --epochs 2 or more" in message


def test_a_precision_change_on_resume_is_recorded_per_epoch(splits, tiny, tmp_path):
    """Epoch 1 in fp32, resumed to 2 epochs in bf16: history.csv's precision column says
    fp32 then bf16, and last.pt keeps the settings the run resumed with."""
    train, val = splits
    fit(config(epochs=1), train, val, tmp_path, quiet=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Emulated bf16 on this CPU.
        history = fit(config(epochs=2, precision="bf16"), train, val, tmp_path,
                               resume=True, quiet=True)  # fmt: skip
    rows = History.from_csv(tmp_path / "history.csv").rows
    assert [(r["epoch"], r["device"], r["precision"]) for r in rows] == [
        (1, "cpu", "fp32"), (2, "cpu", "bf16"),
    ]  # fmt: skip
    assert [r["precision"] for r in history.rows] == ["fp32", "bf16"]
    assert all(math.isfinite(r["train_loss"]) for r in rows)
    assert checkpoints.load(tmp_path / "last.pt")["config"]["precision"] == "bf16"


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize(("before", "after"), [("bf16", "fp32"), ("fp32", "bf16")])
def test_restored_optimizer_state_has_its_parameters_strides(tmp_path, optimizer, before,
                                                             after):  # fmt: skip
    """The model is channels_last in bf16 and NCHW in fp32, and a resume may change the
    precision: after `restore`, every optimizer state tensor shaped like its parameter
    (Adam's exp_avg and exp_avg_sq, SGD's momentum buffer) has that parameter's strides,
    as CUDA's fused optimizers require, and the same values as saved."""
    import torch

    from pathmnist.config import MONITORS, TrainConfig
    from pathmnist.device import memory_format
    from pathmnist.model.registry import build
    from pathmnist.training import resume
    from pathmnist.training.early_stopping import EarlyStopping
    from pathmnist.training.prepare import build_optimizer
    from pathmnist.training.schedulers import StepLR

    cfg = TrainConfig(optimizer=optimizer, device="cpu")

    def parts(precision):
        torch.manual_seed(0)
        model = build("resnet18", num_classes=9).to(memory_format=memory_format(precision))
        opt = build_optimizer(cfg, model)
        return model, opt, StepLR(opt, 5), EarlyStopping(3, 0.0, MONITORS[cfg.monitor])

    model, opt, scheduler, stopper = parts(before)
    x = torch.rand(4, 3, 32, 32).to(memory_format=torch.channels_last)
    model(x).sum().backward()
    opt.step()  # Creates the state: moments (or momentum) in the parameters' layout.
    saved = {"model": model.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": scheduler.state_dict(), "early_stopping": stopper.state_dict(),
             "rng": checkpoints.rng_state(), "rows": [], "stopped_early": False}  # fmt: skip
    model, opt, scheduler, stopper = parts(after)
    resume.restore(tmp_path, saved, model, opt, scheduler, stopper)
    conv1 = model.conv1.weight
    assert conv1.is_contiguous(memory_format=torch.channels_last) is (after == "bf16")
    checked = 0
    for p in model.parameters():
        for value in opt.state[p].values():
            if isinstance(value, torch.Tensor) and value.shape == p.shape:
                assert value.stride() == p.stride(), (tuple(p.shape), value.stride())
                checked += 1
    assert checked >= len(list(model.parameters()))
    key = "exp_avg" if optimizer == "adam" else "momentum_buffer"
    first = saved["optimizer"]["state"][0][key]
    assert torch.equal(opt.state[conv1][key], first)


def test_save_epoch_copies_no_weights_it_then_drops(tmp_path, monkeypatch):
    """Saving an epoch whose stopper holds best weights clones no tensor (the best weights
    are best.pt's model, so last.pt leaves them out without copying them first), and both
    files hold the same host tensors: last.pt's best_weights is None, best.pt's model is
    the model's weights."""
    import torch

    from pathmnist.training import resume
    from pathmnist.training.early_stopping import EarlyStopping
    from pathmnist.training.schedulers import StepLR

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.Adam(model.parameters())
    model(torch.rand(2, 4)).sum().backward()
    opt.step()
    stopper = EarlyStopping(patience=2)
    stopper.step(1.0, model)  # Epoch 1 is the best: its weights are copied here, once.
    row = dict(epoch=1, train_loss=1.0, train_acc=0.5, val_loss=1.0, val_acc=0.5, val_auc=0.5,
               lr=1e-3, seconds=1.0, device="cpu", precision="fp32")  # fmt: skip
    clones, clone = [], torch.Tensor.clone
    monkeypatch.setattr(
        torch.Tensor, "clone", lambda t, *a, **k: clones.append(1) or clone(t, *a, **k)
    )
    resume.save_epoch(tmp_path, {"config": {}}, model, opt, StepLR(opt, 5), stopper, [row], False)
    monkeypatch.undo()
    assert clones == []
    last, best = (checkpoints.load(tmp_path / name) for name in ("last.pt", "best.pt"))
    assert last["early_stopping"]["best_weights"] is None
    assert stopper.best_weights is not None  # The stopper keeps them for restore().
    for key, value in model.state_dict().items():
        assert torch.equal(best["model"][key], value) and torch.equal(last["model"][key], value)
