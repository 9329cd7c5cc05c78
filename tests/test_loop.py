"""Evaluation: test-time augmentation against an explicit loop over the 8 views, and
bf16 evaluation against fp32 on the same weights (the classifier and softmax run in
float32, so probabilities are not quantised to bf16's 8 mantissa bits)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pathmnist.augment.dihedral import views as dihedral_views
from pathmnist.augment.transforms import build_transforms
from pathmnist.data.dataset import ImageSet, load_split
from pathmnist.data.loader import BatchLoader
from pathmnist.errors import PathMNISTError
from pathmnist.evaluation import metrics
from pathmnist.model.resnet import resnet18
from pathmnist.training.loop import evaluate, forward


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
    config = TrainConfig(epochs=2, batch_size=16, precision="fp32")
    history = fit(config, train, val, tmp_path_factory.mktemp("r"), quiet=True)
    loader = BatchLoader(val, 64, shuffle=False, transform=history.eval_transform)
    assert metrics.macro_auc(*(lambda e: (e.labels, e.probs))(evaluate(history.model, loader)))
    return history.model, loader
