"""Tests for pathmnist.model.densenet against the oracle torchvision.models.densenet121: the
same state_dict keys and shapes, bit-identical seeded initialisation, equal float64 logits
both ways of a strict load, equal gradients with and without checkpointing, the parameter
count; the shapes per block the docstring states; shape properties for both stems; and
bad input."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from conftest import write_medmnist_npz
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import densenet_image_sizes, resnet_num_classes
from test_resnet import randomize_batchnorm, rel_err

from pathmnist.errors import PathMNISTError
from pathmnist.model.densenet import MIN_SIZE, densenet121
from pathmnist.model.registry import build


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("num_classes", [9, 1000])
def test_state_dict_and_outputs_match_torchvision_float64(num_classes):
    """Keys, order and shapes equal torchvision's; its weights load into ours with
    strict=True and ours into its, and the float64 eval-mode logits agree to 1e-10."""
    torch.manual_seed(0)
    ref = torchvision.models.densenet121(num_classes=num_classes).double().eval()
    ours = densenet121(num_classes=num_classes).double().eval()
    ref_sd, ours_sd = ref.state_dict(), ours.state_dict()
    assert list(ours_sd) == list(ref_sd)
    assert {k: v.shape for k, v in ours_sd.items()} == {k: v.shape for k, v in ref_sd.items()}
    # torchvision's documented 7,978,856 for 1,000 classes; 1024 * 9 + 9 in the 9-class head.
    assert n_params(ours) == n_params(ref) == {9: 6_963_081, 1000: 7_978_856}[num_classes]
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    randomize_batchnorm(ref, seed=1)
    ours.load_state_dict(ref.state_dict(), strict=True)
    with torch.no_grad():
        assert rel_err(ours(x), ref(x)) <= 1e-10
    randomize_batchnorm(ours, seed=2)
    ref.load_state_dict(ours.state_dict(), strict=True)
    with torch.no_grad():
        assert rel_err(ref(x), ours(x)) <= 1e-10


def test_seeded_initialisation_is_bitwise_torchvision():
    """From the same seed every initial weight equals torchvision's exactly."""
    torch.manual_seed(3)
    ref = torchvision.models.densenet121(num_classes=9).state_dict()
    torch.manual_seed(3)
    ours = densenet121().state_dict()
    assert all(torch.equal(ours[k], ref[k]) for k in ref)


@pytest.mark.parametrize("memory_efficient", [False, True])
def test_train_mode_gradients_equal_torchvision(memory_efficient):
    """In train mode (float64, two 32x32 images) every parameter's gradient agrees with
    torchvision's to 1e-10, with checkpointing on (ours) or off, against torchvision's
    plain network: checkpointing changes memory, not results."""
    torch.manual_seed(0)
    ref = torchvision.models.densenet121(num_classes=9).double().train()
    randomize_batchnorm(ref, seed=1)
    ours = densenet121(memory_efficient=memory_efficient).double().train()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    weights = torch.linspace(-1, 1, 9, dtype=torch.float64)
    for model in (ours, ref):
        (model(x) * weights).sum().backward()
    ref_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        assert rel_err(p.grad, ref_params[name].grad) <= 1e-10, name


def test_checkpointing_is_used_only_with_the_flag():
    """memory_efficient=True runs the bottleneck under torch.utils.checkpoint: the values
    autograd stores for backward shrink by more than half (the concatenations and 1x1
    outputs are recomputed instead)."""
    stored = {}
    for flag in (False, True):
        model = densenet121(memory_efficient=flag).train()
        saved = [0]

        def pack(t, saved=saved):
            saved[0] += t.numel()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(torch.randn(2, 3, 32, 32))
        stored[flag] = saved[0]
    assert stored[True] < 0.5 * stored[False]


def test_shapes_per_block_at_64x64():
    """The shapes the module docstring lists for a 64x64 batch."""
    model = densenet121().eval()
    shapes, x = {}, torch.zeros(2, 3, 64, 64)
    with torch.no_grad():
        for name, module in model.features.named_children():
            x = module(x)
            shapes[name] = tuple(x.shape[1:])
    assert shapes["pool0"] == (64, 16, 16)
    assert shapes["denseblock1"] == (256, 16, 16) and shapes["transition1"] == (128, 8, 8)
    assert shapes["denseblock2"] == (512, 8, 8) and shapes["transition2"] == (256, 4, 4)
    assert shapes["denseblock3"] == (1024, 4, 4) and shapes["transition3"] == (512, 2, 2)
    assert shapes["denseblock4"] == (1024, 2, 2) and shapes["flatten"] == (1024,)


@settings(deadline=None, max_examples=6)
@given(
    size=densenet_image_sizes,
    num_classes=resnet_num_classes,
    stem=st.sampled_from(("imagenet", "small")),
)
def test_logits_shape_for_any_valid_size(size, num_classes, stem):
    """Any side from the stem's minimum up gives (B, num_classes) logits, features (B, 1024)
    and the classifier under both names."""
    model = densenet121(num_classes=num_classes, stem=stem).eval()
    x = torch.rand(2, 3, max(size, MIN_SIZE[stem]), size + 3)
    with torch.no_grad():
        assert model.features(x).shape == (2, 1024)
        assert model(x).shape == (2, num_classes)
    assert model.fc is model.classifier


def test_small_stem_changes_only_conv0():
    """stem="small" keeps every key; only conv0 is 3x3, and pool0 is the identity."""
    small, big = densenet121(stem="small").state_dict(), densenet121().state_dict()
    assert list(small) == list(big)
    assert [k for k in big if small[k].shape != big[k].shape] == ["features.conv0.weight"]
    assert small["features.conv0.weight"].shape == (64, 3, 3, 3)


def test_registry_builds_it():
    assert isinstance(build("densenet121", num_classes=4).classifier, torch.nn.Linear)


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((3, 64, 64), "unsqueeze"),
        ((1, 64, 64, 3), "permute"),
        ((1, 3, 28, 28), "at least 29x29"),
    ],
)
def test_bad_input_is_one_sentence(shape, match):
    with pytest.raises(PathMNISTError, match=match):
        densenet121().eval()(torch.zeros(shape))


def test_one_image_in_train_mode_is_refused():
    """A 32x32 image reaches norm5 at 1x1: one value per channel cannot be normalised."""
    with pytest.raises(PathMNISTError, match="at least 2 images"):
        densenet121().train()(torch.zeros(1, 3, 32, 32))


@pytest.mark.parametrize("kw", [{"num_classes": 0}, {"num_classes": True}, {"stem": "tiny"}])
def test_bad_arguments(kw):
    with pytest.raises(PathMNISTError):
        densenet121(**kw)


@pytest.mark.slow
def test_example_trains_densenet121(tmp_path):
    """examples/01_baseline.py --arch densenet121 (with RandAugment) runs end to end."""
    data = write_medmnist_npz(tmp_path / "t.npz", sizes=(30, 10, 10), size=32)
    example = Path(__file__).resolve().parents[1] / "examples" / "01_baseline.py"
    args = ["--data-file", data, "--arch", "densenet121", "--augment", "flips,randaugment"]
    fast = ["--epochs", "1", "--batch-size", "16", "--device", "cpu", "--quiet"]
    done = subprocess.run(
        [sys.executable, str(example), *map(str, args), *fast, "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "run" / "metrics.json").is_file()
