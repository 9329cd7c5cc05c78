"""training.loop: test-time augmentation against an explicit loop over the 8 views; bf16
evaluation against fp32 on the same weights (the classifier and softmax run in float32,
so probabilities are not quantised to bf16's 8 mantissa bits); batches reach the first
convolution in the weights' memory format; a padded last batch gives the same logits; and
a compiled run makes two graphs (train, eval) however its splits end."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pathmnist.augment.dihedral import views as dihedral_views
from pathmnist.augment.transforms import build_transforms
from pathmnist.data.dataset import ImageSet, load_split
from pathmnist.data.loader import BatchLoader
from pathmnist.device import memory_format
from pathmnist.errors import PathMNISTError
from pathmnist.model.resnet import resnet18
from pathmnist.training.loop import _padded, evaluate, forward


def _loader(images, labels, batch_size=16):
    _, eval_tf = build_transforms((0.6, 0.5, 0.7), (0.2, 0.2, 0.15))
    names = tuple(f"class {i}" for i in range(9))
    return BatchLoader(
        ImageSet(images, labels, names), batch_size, shuffle=False, transform=eval_tf
    )


def _model(seed=0):
    torch.manual_seed(seed)
    model = resnet18(num_classes=9)
    # A few random BatchNorm statistics, so eval mode is not the identity normalisation.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@settings(deadline=None, max_examples=3)
@given(seed=st.integers(0, 1000), n=st.integers(1, 10))
def test_tta_equals_an_explicit_loop_over_rot90_and_flip(seed, n):
    """evaluate(tta=True) gives, per image, the mean softmax over torch.rot90(x, k) for
    k = 0..3 and the same after torch.flip along the width: equal to 1e-5 in fp32."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(n) % 9
    model = _model(seed)
    ev = evaluate(model, _loader(images, labels), "fp32", tta=True)
    x = _loader(images, labels, batch_size=n).transform(torch.from_numpy(images))
    expected = torch.zeros(n, 9)
    with torch.no_grad():
        for flip in (False, True):
            for k in range(4):
                v = torch.rot90(x, k, dims=(2, 3))
                v = torch.flip(v, dims=(3,)) if flip else v
                expected += model(v).softmax(1) / 8
    np.testing.assert_allclose(ev.probs, expected.numpy(), atol=1e-5)
    loss = -np.log(expected.numpy()[np.arange(n), labels]).mean()
    assert ev.loss == pytest.approx(loss, rel=1e-4)


def test_dihedral_views_are_the_eight_distinct_symmetries():
    """A square image with no symmetry of its own has 8 distinct views, the first the image."""
    x = torch.arange(16.0).view(1, 1, 4, 4).expand(1, 3, 4, 4)
    views = dihedral_views(x)
    assert len(views) == 8 and torch.equal(views[0], x)
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8


def test_tta_refuses_non_square_images():
    """TTA's rotations need square images: one sentence saying so."""
    with pytest.raises(PathMNISTError, match="square"):
        dihedral_views(torch.zeros(1, 3, 4, 6))


def test_forward_returns_float32_logits_under_bf16():
    """Under bf16 autocast the features are bf16 but the logits leave fc in float32."""
    model = _model()
    x = torch.randn(4, 3, 32, 32)
    assert forward(model, x, "bf16").dtype == torch.float32
    assert forward(model, x, "fp32").dtype == torch.float32


def test_bf16_evaluation_matches_fp32_auc_and_has_few_ties(tiny_trained):
    """For the same weights, evaluation under bf16 gives a macro AUC within 0.002 of fp32's
    and about as few tied probabilities (bf16 probabilities would tie many more)."""
    model, loader = tiny_trained
    fp32 = evaluate(model, loader, "fp32")
    bf16 = evaluate(model, loader, "bf16")
    assert np.isfinite([fp32.macro_auc, bf16.macro_auc, fp32.loss, bf16.loss]).all()
    assert abs(bf16.macro_auc - fp32.macro_auc) <= 0.002

    def ties(p):  # Equal probabilities within a class column, summed over classes.
        return sum(len(col) - len(np.unique(col)) for col in p.T)

    quantised = torch.from_numpy(fp32.probs).bfloat16().float().numpy()
    assert ties(bf16.probs) <= ties(fp32.probs) + 10
    assert ties(quantised) > ties(bf16.probs)  # What the old bf16 head did.


@pytest.fixture(scope="module")
def tiny_trained(tmp_path_factory):
    """A ResNet-18 trained 2 epochs on a tiny synthetic set, and its validation loader."""
    from conftest import write_medmnist_npz

    from pathmnist.config import TrainConfig
    from pathmnist.training.fit import fit

    path = write_medmnist_npz(tmp_path_factory.mktemp("d") / "t.npz", (90, 200, 9), size=32)
    train, val = (load_split(s, data_file=path) for s in ("train", "val"))
    # On the CPU, where the loader below puts its batches (device "auto" would train on a
    # GPU where there is one, and then evaluate CPU batches with GPU weights).
    config = TrainConfig(epochs=2, batch_size=16, device="cpu", precision="fp32")
    history = fit(config, train, val, tmp_path_factory.mktemp("r"), quiet=True)
    loader = BatchLoader(val, 64, shuffle=False, transform=history.eval_transform)
    ev = evaluate(history.model, loader)
    assert np.isfinite(ev.probs).all() and 0.5 < ev.macro_auc <= 1, ev.macro_auc  # NaN fails.
    return history.model, loader


@pytest.mark.parametrize(("precision", "channels_last"), [("fp32", False), ("bf16", True)])
def test_batches_reach_the_first_conv_in_the_weights_layout(precision, channels_last):
    """The loader's batches are channels_last (NCHW views of NHWC bytes); forward() puts
    them in the weights' layout once, so conv1 sees NCHW in fp32 and channels_last in bf16
    (where the model is channels_last), never a layout every convolution must convert."""
    model = _model().to(memory_format=memory_format(precision))
    seen = []
    model.conv1.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    x = torch.rand(2, 32, 32, 3).permute(0, 3, 1, 2)  # (B, 3, H, W), channels_last bytes
    forward(model, x, precision)
    assert seen[0].is_contiguous(memory_format=torch.channels_last) is channels_last
    assert seen[0].is_contiguous() is not channels_last


def test_a_padded_last_batch_gives_the_same_logits():
    """Padding a batch to the full size with copies of its last image and cutting the
    logits back gives the unpadded logits (eval mode: each row depends on itself only)."""
    model = _model()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        padded = _padded(model, x, "fp32", None, full=8)
        torch.testing.assert_close(padded, forward(model, x, "fp32"), rtol=1e-5, atol=1e-5)
    assert padded.shape == (3, 9)


def test_compile_makes_one_graph_for_training_and_one_for_evaluation(monkeypatch, tmp_path):
    """fit(compile=True) with a last, smaller batch in both splits (21 training images in
    batches of 8, 11 validation images in batches of 8) compiles exactly 2 graphs, counted
    by torch._dynamo's CompileCounter backend (no C compiler needed): training with a
    dynamic batch dimension, evaluation with its last batch padded. Without either, the
    last batches compile graphs of their own."""
    from torch._dynamo.testing import CompileCounter

    from pathmnist.config import TrainConfig
    from pathmnist.training import fit as fit_module
    from pathmnist.training import loop

    torch._dynamo.reset()
    counter, compile_ = CompileCounter(), torch.compile
    monkeypatch.setattr(fit_module.torch, "compile", lambda fn, **kw: compile_(fn, backend=counter))
    monkeypatch.setattr(loop, "EVAL_BATCH_SIZE", 8)
    rng = np.random.default_rng(0)
    names = tuple(f"class {i}" for i in range(9))
    train, val = (ImageSet(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n) % 9,
                           names) for n in (21, 11))  # fmt: skip
    config = TrainConfig(epochs=1, batch_size=8, device="cpu", precision="fp32", compile=True)
    history = fit_module.fit(config, train, val, tmp_path, quiet=True)
    assert np.isfinite(history.rows[0]["val_loss"])
    assert counter.frame_count == 2
    torch._dynamo.reset()
