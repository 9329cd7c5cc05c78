"""The GPU path: fit and resume on CUDA in bf16 and fp32 (and a resume that changes the
precision, so the fused optimizer meets state saved in the other memory format), the same
batches and augmentation draws on the CPU and the GPU, the pinned-memory fallback of
BatchLoader, compile=True, no host synchronisation in a training epoch with MixUp or
CutMix, one per batch in Macenko normalisation, and checkpoints' host copies.

Every test carries the `cuda` marker and is skipped, with its reason, where torch sees no
CUDA GPU. On a GPU machine: `PYTHONPATH=. python -m pytest -m cuda tests/` (every test
marked cuda, in every file; benchmarks/gpu_check.sh runs it). The data are a tiny
synthetic PathMNIST at 32x32.
"""

import math

import pytest
import torch

from pathmnist.augment import mixing, stain
from pathmnist.augment.transforms import build_transforms, channel_stats
from pathmnist.config import TrainConfig
from pathmnist.data import synthetic
from pathmnist.data.dataset import CLASS_NAMES, ImageSet
from pathmnist.data.loader import BatchLoader, fits_on_device
from pathmnist.model.registry import build
from pathmnist.training import checkpoints, loop, prepare
from pathmnist.training.fit import fit

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; torch sees none"),
]
NUMBERS = ("train_loss", "train_acc", "val_loss", "val_acc", "val_auc")


@pytest.fixture(scope="module")
def splits():
    """64 training and 32 validation images of 32x32, every class present."""
    arrays = synthetic.generate(64, 32, 1, size=32, seed=0)
    return tuple(
        ImageSet(arrays[f"{s}_images"], arrays[f"{s}_labels"].ravel(), CLASS_NAMES)
        for s in ("train", "val")
    )


def cuda_config(**kw):
    return TrainConfig(**{"batch_size": 16, "device": "cuda", "seed": 0, **kw})


def finite(rows):
    return all(math.isfinite(row[k]) for row in rows for k in NUMBERS)


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_fit_two_epochs_and_resume(splits, tmp_path, precision):
    """Two epochs on CUDA give finite numbers recorded as cuda/precision; a run stopped
    after epoch 1 and resumed to 2 keeps epoch 1's row as saved and ends near the
    uninterrupted run: val loss within 1% (some cuDNN backward kernels, e.g. adaptive
    average pooling, add in a varying order, so GPU runs are not bitwise repeatable)."""
    train, val = splits
    kw = {"precision": precision, "deterministic": True}
    whole = fit(cuda_config(epochs=2, **kw), train, val, tmp_path / "whole", quiet=True)
    part = fit(cuda_config(epochs=1, **kw), train, val, tmp_path / "part", quiet=True)
    resumed = fit(
        cuda_config(epochs=2, **kw), train, val, tmp_path / "part", resume=True, quiet=True
    )
    assert [r["epoch"] for r in whole.rows] == [r["epoch"] for r in resumed.rows] == [1, 2]
    assert finite(whole.rows) and finite(resumed.rows)
    assert {(r["device"], r["precision"]) for r in resumed.rows} == {("cuda", precision)}
    assert resumed.rows[0] == part.rows[0]
    assert math.isclose(resumed.rows[1]["val_loss"], whole.rows[1]["val_loss"], rel_tol=1e-2)
    assert next(resumed.model.parameters()).device.type == "cuda"


def test_same_batches_and_augmentation_on_cpu_and_gpu(splits):
    """For one (seed, epoch), BatchLoader + build_transforms(augment=("flips",)) gives the
    same labels exactly and the same images within 1e-5 (the flips and rotations are exact;
    the normalisation may round differently on the GPU) on the CPU and on CUDA."""
    train, _ = splits
    train_tf, _ = build_transforms(*channel_stats(train), augment=("flips",))
    loaders = [
        BatchLoader(train, 8, shuffle=True, seed=3, transform=train_tf, device=device)
        for device in ("cpu", "cuda")
    ]
    for epoch in (1, 2):
        for loader in loaders:
            loader.set_epoch(epoch)
        for (x_cpu, y_cpu), (x_gpu, y_gpu) in zip(*loaders, strict=True):
            assert x_gpu.device.type == "cuda"
            assert torch.equal(y_gpu.cpu(), y_cpu)
            torch.testing.assert_close(x_gpu.cpu(), x_cpu, rtol=0, atol=1e-5)


def test_pinned_memory_fallback_gives_the_same_batches(splits):
    """A split kept in pinned host memory (keep_on_device=False) yields exactly the batches
    of the split kept on the GPU, on the GPU, over two epochs with a last partial batch
    (60 images in batches of 8), so the reused pinned buffer never leaks a stale batch."""
    train, _ = splits
    part = ImageSet(train.images[:60], train.labels[:60], train.class_names)
    train_tf, _ = build_transforms(*channel_stats(part), augment=("flips",))
    on, off = (
        BatchLoader(
            part, 8, shuffle=True, seed=1, transform=train_tf, device="cuda", keep_on_device=keep
        )
        for keep in (True, False)
    )
    assert on.on_device and not off.on_device
    for epoch in (1, 2):
        on.set_epoch(epoch)
        off.set_epoch(epoch)
        batches = list(zip(on, off, strict=True))
        assert len(batches) == 8
        for (x_on, y_on), (x_off, y_off) in batches:
            assert x_off.device.type == "cuda" and y_off.device.type == "cuda"
            assert torch.equal(x_on, x_off) and torch.equal(y_on, y_off)


def test_compile_trains_with_finite_losses(splits, tmp_path):
    """fit with compile=True (torch.compile of the model) trains two epochs on CUDA and
    every loss, accuracy and AUC is a finite number."""
    train, val = splits
    history = fit(cuda_config(epochs=2, compile=True), train, val, tmp_path, quiet=True)
    assert [r["epoch"] for r in history.rows] == [1, 2]
    assert finite(history.rows)


@pytest.mark.parametrize(("before", "after"), [("bf16", "fp32"), ("fp32", "bf16")])
def test_resume_with_another_precision_trains_with_the_fused_optimizer(
    splits, tmp_path, before, after
):
    """bf16 keeps the model channels_last, fp32 NCHW: a run resumed with the other
    precision restores Adam's moments in the new layout, which the fused CUDA Adam needs,
    and trains its next epoch to finite numbers."""
    train, val = splits
    fit(cuda_config(epochs=1, precision=before), train, val, tmp_path, quiet=True)
    resumed = fit(cuda_config(epochs=2, precision=after), train, val, tmp_path, resume=True,
                  quiet=True)  # fmt: skip
    assert [r["precision"] for r in resumed.rows] == [before, after]
    assert finite(resumed.rows)


@pytest.mark.parametrize("mix", [(0.4, 0.0), (0.0, 1.0), (0.4, 1.0)], ids=["mixup", "cutmix",
                                                                             "both"])  # fmt: skip
def test_a_training_epoch_with_mixing_never_waits_for_the_gpu(splits, mix, monkeypatch):
    """With torch.cuda's sync debug mode set to "error", a training epoch (transforms,
    MixUp/CutMix, forward, backward, Adam) raises at the first operation that synchronises
    with the host; it runs through, and only the final read of the sums synchronises."""
    train, _ = splits
    train_tf, _ = build_transforms(*channel_stats(train), augment=("flips",))
    loader = BatchLoader(train, 16, seed=0, transform=train_tf, device="cuda")
    model = build("resnet18", num_classes=9).cuda().to(memory_format=torch.channels_last)
    optimizer = prepare.build_optimizer(cuda_config(), model)
    mixer = mixing.build_mix(*mix, 9)
    loop.train_one_epoch(model, loader, optimizer, "bf16", None, None, mixer)  # Warm-up.
    torch.cuda.synchronize()
    # The final float() and int() of the sums are the one intended sync: left as tensors.
    monkeypatch.setattr(loop, "float", lambda t: t, raising=False)
    monkeypatch.setattr(loop, "int", lambda t: t, raising=False)
    try:
        torch.cuda.set_sync_debug_mode("error")
        loss, _ = loop.train_one_epoch(model, loader, optimizer, "bf16", None, None, mixer)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    monkeypatch.undo()
    assert math.isfinite(float(loss))


def test_macenko_waits_for_the_gpu_once_per_batch():
    """MacenkoNormalize on a CUDA batch synchronises exactly once (the explicit copy of
    the (B, 3, 3) covariances to the host), counted by torch.cuda's sync debug warnings,
    and equals the CPU's result to 1e-4."""
    arrays = synthetic.generate(16, 1, 1, size=32, seed=0)
    images = arrays["train_images"]
    normalize = stain.MacenkoNormalize(*stain.fit_macenko(images[:4]))
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    expected = normalize(x)
    x_gpu = x.cuda()
    normalize(x_gpu)  # Warm-up: the targets' one-time copy to the GPU.
    torch.cuda.synchronize()
    with pytest.warns(UserWarning) as caught:
        torch.cuda.set_sync_debug_mode("warn")
        try:
            out = normalize(x_gpu)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) == 1, [str(w.message) for w in syncs]
    torch.testing.assert_close(out.cpu(), expected, rtol=0, atol=1e-4)


def test_checkpoint_host_copies_equal_the_gpu_tensors():
    """checkpoints.to_host copies every GPU tensor of a nested payload to the host once,
    equal to the original, keeping its strides (a channels_last weight stays so)."""
    w = torch.randn(4, 3, 2, 2, device="cuda").to(memory_format=torch.channels_last)
    payload = {"model": {"w": w}, "rows": [1, 2], "list": [torch.arange(3, device="cuda")]}
    host = checkpoints.to_host(payload)
    assert host["model"]["w"].device.type == "cpu" and host["rows"] == [1, 2]
    assert host["model"]["w"].stride() == w.stride()
    assert torch.equal(host["model"]["w"], w.cpu()) and torch.equal(host["list"][0],
                                                                    torch.arange(3))  # fmt: skip


def test_fits_on_device_on_a_real_gpu():
    """A small split fits; one larger than the whole GPU does not."""
    device = torch.device("cuda")
    total = torch.cuda.get_device_properties(device).total_memory
    assert fits_on_device(1 << 20, device) and not fits_on_device(total, device)
