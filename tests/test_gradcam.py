"""Tests for pathmnist.evaluation.gradcam: captum's LayerGradCam (raw map at the layer's resolution)
and pytorch_grad_cam's GradCAM (upsampled, scaled map) as oracles in float64; hand-built
models whose evidence sits in a known region; hypothesis properties that the model, its
mode, its hooks and its parameters' .grad are left as they were; bad inputs."""

import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from pathmnist.errors import PathMNISTError
from pathmnist.evaluation.gradcam import grad_cam, resolve_layer
from pathmnist.model.densenet import densenet121
from pathmnist.model.resnet import resnet18

SIZE = 48  # imagenet stem: layer3 is 3x3, layer4 2x2 (a 32x32 image would leave layer4 1x1).


@pytest.fixture(scope="module")
def model():
    """A float64 ResNet-18 (9 classes) with non-trivial BatchNorm running statistics."""
    torch.manual_seed(0)
    m = resnet18(num_classes=9).double()
    for bn in (mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.1, 0.1)
        bn.running_var.uniform_(0.5, 1.5)
    return m.eval()


@pytest.fixture(scope="module")
def model32():
    """A float32 ResNet-18 for the properties (about 4x faster than float64 on a CPU)."""
    torch.manual_seed(1)
    return resnet18(num_classes=9).eval()


def batch(b=3, size=SIZE, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, size, size, generator=g).to(dtype)


def no_hooks(module):
    return not any(
        len(getattr(m, name))
        for m in module.modules()
        for name in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks")
    )


@pytest.mark.parametrize("layer", ["layer4", "layer3", "layer2.1"])
def test_raw_map_equals_captum_layer_gradcam(model, layer):
    """Before upsampling and scaling the map equals captum's LayerGradCam with
    relu_attributions=True, to 1e-12 in float64, one class per image."""
    x, target = batch(), torch.tensor([0, 4, 8])
    ours = grad_cam(model, x, target, layer, upsample=False, scale=False)  # (B, h, w)
    ref = LayerGradCam(model, model.get_submodule(layer)).attribute(
        x, target, relu_attributions=True
    )[:, 0]
    assert ours.shape == ref.shape and ours.abs().amax() > 0  # A non-trivial map.
    torch.testing.assert_close(ours, ref.detach(), rtol=1e-10, atol=1e-12)


def grad_cam_library(model, x, layer, targets):
    """pytorch_grad_cam's GradCAM with ClassifierOutputTarget; restores model's grads."""
    with GradCAM(model=model, target_layers=[model.get_submodule(layer)]) as cam:
        out = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    model.zero_grad(set_to_none=True)  # It calls loss.backward(), which fills .grad.
    return out


@pytest.mark.parametrize("layer", ["layer4", "layer3"])
def test_map_equals_pytorch_grad_cam(model, layer):
    """The upsampled, min-max scaled map equals pytorch_grad_cam's GradCAM (scale, cv2
    bilinear resize, scale again) to 1e-5, for the predicted classes (target=None)."""
    x = batch(seed=1)
    ours = grad_cam(model, x, layer=layer)  # (B, 48, 48)
    pred = model(x).argmax(dim=1)
    ref = grad_cam_library(model, x, layer, pred)
    assert ours.shape == (3, SIZE, SIZE)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)


def test_densenet_default_layer_equals_captum():
    """DenseNet-121's default layer (features.norm5, pytorch-grad-cam's choice): the raw map
    equals captum's LayerGradCam on that module, in float64."""
    torch.manual_seed(2)
    d = densenet121(num_classes=9).double().eval()
    x, target = batch(b=2, size=64), torch.tensor([1, 7])
    ours = grad_cam(d, x, target, upsample=False, scale=False)  # (B, 2, 2)
    ref = LayerGradCam(d, d.features.norm5).attribute(x, target, relu_attributions=True)[:, 0]
    assert ours.shape == ref.shape == (2, 2, 2)
    torch.testing.assert_close(ours, ref.detach(), rtol=1e-10, atol=1e-12)


def test_full_resolution_layer_equals_pytorch_grad_cam():
    """With the small stem, layer1 keeps the image size (no resize at all): equal to 1e-6."""
    torch.manual_seed(1)
    m = resnet18(num_classes=9, stem="small").double().eval()
    x, target = batch(2, 8, seed=2), torch.tensor([3, 5])
    ours = grad_cam(m, x, target, "layer1")
    np.testing.assert_allclose(ours.numpy(), grad_cam_library(m, x, "layer1", target), atol=1e-6)


class Colours(nn.Module):
    """logit c = mean of colour channel c: class 0 is "red", class 1 "green", 2 "blue"."""

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(3, 3, 1, bias=False)
        self.features.weight.data = torch.eye(3).view(3, 3, 1, 1)
        self.fc = nn.Linear(3, 3, bias=False)
        self.fc.weight.data = torch.eye(3)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


def test_each_class_points_at_its_own_region():
    """A red square top-left and a green square bottom-right: the map for class 0 peaks in
    the red square and is 0 outside it, the map for class 1 likewise in the green one."""
    x = torch.zeros(1, 3, 16, 16)
    x[0, 0, 2:6, 2:6] = 1.0  # Red.
    x[0, 1, 10:14, 9:15] = 0.8  # Green.
    red, green = grad_cam(Colours(), x.expand(2, -1, -1, -1), torch.tensor([0, 1]), "features")
    assert red[2:6, 2:6].min() == 1 and red.sum() == 16  # Exactly the red square.
    assert green[10:14, 9:15].min() == 1 and green.sum() == 24


class Gate(nn.Module):
    """Multiplies by a fixed mask: only the region where mask = 1 reaches the logits."""

    def __init__(self, mask):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, a):
        return a * self.mask


class RegionModel(nn.Module):
    """Positive 1x1 features, gated to the rows 1-3 and columns 4-7 of an 8x8 map."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU())
        nn.init.uniform_(self.features[0].weight, 0.1, 1.0)
        nn.init.constant_(self.features[0].bias, 0.1)
        mask = torch.zeros(8, 8)
        mask[1:4, 4:8] = 1
        self.gate = Gate(mask)
        self.unused = nn.Conv2d(3, 3, 1)  # Registered but never called.
        self.unused_branch = nn.Conv2d(3, 3, 1)
        self.fc = nn.Linear(4, 2)
        nn.init.uniform_(self.fc.weight, 0.1, 1.0)

    def forward(self, x):
        self.side = self.unused_branch(x)  # Runs, but the logits do not depend on it.
        return self.fc(self.gate(self.features(x)).mean(dim=(2, 3)))


@settings(deadline=None, max_examples=25)
@given(seed=st.integers(0, 2**16), target=st.sampled_from([None, 0, 1]))
@example(seed=0, target=None)
def test_map_peaks_in_the_region_the_logit_depends_on(seed, target):
    """For any positive image, the map at the gate is positive inside the gated region,
    exactly 0 outside it, and reaches its maximum 1 inside."""
    torch.manual_seed(seed)
    m = RegionModel()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    cam = grad_cam(m, x, target, m.gate)  # (2, 8, 8)
    inside = torch.zeros(8, 8, dtype=torch.bool)
    inside[1:4, 4:8] = True
    assert (cam[:, inside] > 0).all() and (cam[:, ~inside] == 0).all()
    assert torch.equal(cam.amax(dim=(1, 2)), torch.ones(2))


@settings(deadline=None, max_examples=6)
@given(
    b=st.integers(1, 2),
    layer=st.sampled_from(["layer4", "layer3.0", "layer1"]),
    target=st.sampled_from(["none", "int", "tensor"]),
    training=st.booleans(),
    no_grad=st.booleans(),
)
@example(b=1, layer="layer4", target="none", training=True, no_grad=True)
def test_model_hooks_grads_and_mode_are_left_as_they_were(
    model32, b, layer, target, training, no_grad
):
    """Maps are (B, H, W) in [0, 1], each with maximum 1 or all zero; afterwards the
    state_dict is equal, no hook is left, every .grad is unchanged and model.training is
    restored (also in train mode, where a forward would update BatchNorm statistics, and
    inside torch.no_grad())."""
    model = model32
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for i, p in enumerate(model.parameters()):
        p.grad = None if i % 2 else torch.full_like(p, 0.5)
    model.train(training)
    t = {"none": None, "int": 7, "tensor": torch.arange(b) % 9}[target]
    try:
        with torch.no_grad() if no_grad else torch.enable_grad():
            cam = grad_cam(model, batch(b, seed=b, dtype=torch.float32), t, layer)
        assert model.training is training
    finally:
        model.eval()
    assert cam.shape == (b, SIZE, SIZE) and cam.dtype == torch.float32
    assert cam.min() >= 0 and cam.max() <= 1
    assert all(float(c.max()) in (0.0, 1.0) for c in cam)
    assert no_hooks(model)
    for i, p in enumerate(model.parameters()):
        assert p.grad is None if i % 2 else torch.equal(p.grad, torch.full_like(p, 0.5))
        p.grad = None
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_an_all_zero_map_stays_zero():
    """A class whose evidence is everywhere negative gives ReLU = 0: the map stays 0
    (no division by zero in the min-max scaling)."""
    m = Colours()
    m.fc.weight.data = -torch.eye(3)  # logit c = -mean of channel c.
    cam = grad_cam(m, torch.rand(2, 3, 6, 6) + 0.1, 0, "features")
    assert torch.equal(cam, torch.zeros(2, 6, 6))


def test_resolve_layer():
    """None means the last stage (a ResNet's layer4, a DenseNet's features.norm5); a dotted
    name or one of the model's modules is returned as is."""
    m = resnet18()
    assert resolve_layer(m) is m.layer4
    d = densenet121(num_classes=9)
    assert resolve_layer(d) is d.features.norm5
    assert resolve_layer(m, "layer3.1.conv2") is m.layer3[1].conv2
    assert resolve_layer(m, m.layer2) is m.layer2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"images": torch.zeros(2, 3, 8, 8, dtype=torch.uint8)}, "float tensor"),
        ({"images": torch.zeros(3, 8, 8)}, "batch"),
        ({"layer": "layer9"}, "no submodule"),
        ({"layer": nn.Conv2d(3, 3, 1)}, "not a module of the model"),
        ({"layer": "unused"}, "did not run"),
        ({"layer": "fc"}, "convolutional layer"),
        ({"layer": "unused_branch"}, "do not depend"),
        ({"target": 2}, r"indices in \[0, 2\)"),
        ({"target": torch.tensor([0, 1, 1])}, "2 class indices"),
        ({"target": torch.tensor([0.0, 1.0])}, "integer tensor"),
        ({"target": True}, "target=True"),
        ({"upsample": 1}, "upsample"),
    ],
)
def test_bad_inputs_raise_and_leave_no_hooks(kwargs, match):
    """Each mistake raises PathMNISTError naming it; hooks are removed and the mode
    restored even when the error comes from inside the forward pass."""
    m = RegionModel().train()
    args = {"images": torch.rand(2, 3, 8, 8), "target": None, "layer": "gate", **kwargs}
    with pytest.raises(PathMNISTError, match=match):
        grad_cam(m, **args)
    assert no_hooks(m) and m.training
