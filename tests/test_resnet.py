"""Tests for pathmnist.model.resnet against the oracle torchvision.models.resnet18/34/50: the same
state_dict keys and shapes, bit-identical seeded initialisation, equal float64 logits and
gradients, the same parameter counts; shape properties for both stems; zero-init
residual blocks; and bad input."""

import math

import pytest
import torch
import torchvision
from hypothesis import example, given, settings
from hypothesis import strategies as st
from strategies import batch_sizes, resnet_image_sizes, resnet_num_classes
from torch import nn

from pathmnist.config import STEMS
from pathmnist.errors import PathMNISTError
from pathmnist.model.registry import BUILDERS, build
from pathmnist.model.resnet import MIN_SIZE, BasicBlock, Bottleneck, resnet18, resnet50

# The ResNets among the registry's networks (tests/test_densenet.py covers DenseNet).
ARCHS = {name: f for name, f in BUILDERS.items() if name.startswith("resnet")}
DEPTHS = tuple(ARCHS)


def reference(arch, num_classes, **kw):
    """torchvision's model of the same depth: the oracle."""
    return getattr(torchvision.models, arch)(num_classes=num_classes, **kw)


def randomize_batchnorm(model, seed):
    """Give every BatchNorm non-trivial affine parameters and running statistics, so the
    eval-mode comparison exercises them (fresh ones are the identity map)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))


def rel_err(a, b):
    """max |a - b| / max |b|: the relative error of a against the reference b."""
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def n_params(model):
    return sum(p.numel() for p in model.parameters())


# Oracle -------------------------------------------------------------------------------------


# Golden parameter counts: torchvision's documented ones for 1,000 classes, and with the
# fc cut to PathMNIST's 9 classes (512 * 9 + 9 weights, or 2048 * 9 + 9 for ResNet-50).
COUNTS = {
    ("resnet18", 1000): 11_689_512,
    ("resnet18", 9): 11_181_129,
    ("resnet34", 1000): 21_797_672,
    ("resnet34", 9): 21_289_289,
    ("resnet50", 1000): 25_557_032,
    ("resnet50", 9): 23_526_473,
}


@pytest.mark.parametrize(("arch", "num_classes"), COUNTS)
def test_state_dict_parameters_and_outputs_match_torchvision(arch, num_classes):
    """Keys, order and shapes of the state_dict and the parameter count equal torchvision's;
    torchvision's weights load into ours with strict=True and ours into torchvision's, and
    after each load the float64 eval-mode logits agree to 1e-10 relative."""
    torch.manual_seed(0)
    ref = reference(arch, num_classes).double().eval()
    ours = ARCHS[arch](num_classes=num_classes).double().eval()
    ref_sd, ours_sd = ref.state_dict(), ours.state_dict()
    assert list(ours_sd) == list(ref_sd)
    assert {k: v.shape for k, v in ours_sd.items()} == {k: v.shape for k, v in ref_sd.items()}
    assert n_params(ours) == n_params(ref) == COUNTS[arch, num_classes]

    # One 64x64 image: eval mode needs no batch statistics, and float64 convolutions on
    # the CPU are slow, so a batch of one keeps the six cases fast.
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    randomize_batchnorm(ref, seed=1)
    ours.load_state_dict(ref.state_dict(), strict=True)  # torchvision -> ours
    with torch.no_grad():
        assert rel_err(ours(x), ref(x)) <= 1e-10
    randomize_batchnorm(ours, seed=2)
    ref.load_state_dict(ours.state_dict(), strict=True)  # ours -> torchvision
    with torch.no_grad():
        assert rel_err(ref(x), ours(x)) <= 1e-10


@pytest.mark.parametrize(
    ("arch", "num_classes"),
    [
        ("resnet18", 9),
        # 1,000 classes changes only fc; the deeper ones repeat the same blocks at 2-4x
        # the float64 cost.
        pytest.param("resnet18", 1000, marks=pytest.mark.slow),
        pytest.param("resnet34", 9, marks=pytest.mark.slow),
        pytest.param("resnet34", 1000, marks=pytest.mark.slow),
        pytest.param("resnet50", 9, marks=pytest.mark.slow),
        pytest.param("resnet50", 1000, marks=pytest.mark.slow),
    ],
)
def test_train_mode_gradients_equal_torchvision_float64(arch, num_classes):
    """In train mode on the same float64 batch, the gradient of every parameter agrees with
    torchvision's to 1e-10 relative, and so do the updated BatchNorm running statistics."""
    torch.manual_seed(0)
    ref = reference(arch, num_classes).double().train()
    randomize_batchnorm(ref, seed=1)
    ours = ARCHS[arch](num_classes=num_classes).double().train()
    ours.load_state_dict(ref.state_dict(), strict=True)
    # Two 40x40 images: layer4 still sees 2x2 and BatchNorm has batch statistics, at 40% of
    # the 64x64 cost.
    x = torch.randn(2, 3, 40, 40, dtype=torch.float64)
    # A loss that weights each logit differently, so every fc row gets its own gradient.
    weights = torch.linspace(-1, 1, num_classes, dtype=torch.float64)
    for model in (ours, ref):
        (model(x) * weights).sum().backward()
    ref_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        assert rel_err(p.grad, ref_params[name].grad) <= 1e-10, name
    ref_buffers = dict(ref.named_buffers())
    for name, b in ours.named_buffers():
        assert torch.allclose(b, ref_buffers[name], rtol=1e-10, atol=0), name


@pytest.mark.parametrize(
    ("arch", "zero_init_residual"),
    [("resnet18", False), ("resnet18", True), ("resnet34", False), ("resnet50", True)],
)
def test_seeded_initialisation_is_bitwise_torchvision(arch, zero_init_residual):
    """From the same seed, every initial weight and buffer equals torchvision's exactly:
    the same modules are created and initialised in the same order."""
    torch.manual_seed(3)
    ref = reference(arch, 9, zero_init_residual=zero_init_residual).state_dict()
    torch.manual_seed(3)
    ours = ARCHS[arch](zero_init_residual=zero_init_residual).state_dict()
    assert all(torch.equal(ours[k], ref[k]) for k in ref)


def _block_problem(name, ours, ref, x):
    """None when our BasicBlock `ours` gives torchvision's block `ref`'s output on its input
    x (float64, eval mode); otherwise one sentence naming the block and the branch (main:
    conv1-bn1-relu-conv2-bn2; shortcut: x or downsample(x)) that differs. Hooks on our
    block's layers record what each received and returned."""
    seen = {}

    def record(layer):
        def hook(_module, inputs, output):
            seen[layer] = (inputs[0].detach().clone(), output.detach().clone())

        return hook

    layers = ["conv1", "bn1", "conv2", "bn2"] + (["downsample"] if ours.downsample else [])
    handles = [getattr(ours, n).register_forward_hook(record(n)) for n in layers]
    x_ours, out, error = x.clone(), None, None
    try:
        with torch.no_grad():
            try:
                out = ours(x_ours)
            except NotImplementedError:
                raise
            except RuntimeError as e:  # A shape mismatch: the hooks say what ran before it.
                error = e
            want = ref(x.clone())
            hidden = torch.relu(ref.bn1(ref.conv1(x)))  # The main branch halfway.
            main = ref.bn2(ref.conv2(hidden))  # F(x)
            shortcut = x if ref.downsample is None else ref.downsample(x)
    finally:
        for handle in handles:
            handle.remove()
    if out is not None and out.shape == want.shape and rel_err(out, want) <= 1e-10:
        return None

    def differs(a, b):
        return a.shape != b.shape or rel_err(a, b) > 1e-10

    where = f"block {name}"
    if not torch.equal(x_ours, x):
        return (f"{where}: the block's input x was changed in place (an in-place ReLU on "
                "x?); the shortcut still needs it")  # fmt: skip
    if "conv1" not in seen or differs(seen["conv1"][0], x):
        return f"{where}, main branch: conv1 must take the block's input x"
    if "conv2" not in seen or differs(seen["conv2"][0], hidden):
        return f"{where}, main branch: conv2's input is not relu(bn1(conv1(x)))"
    if "bn2" not in seen or differs(seen["bn2"][1], main):
        return f"{where}, main branch: it must end with bn2(conv2(...))"
    if ref.downsample is not None and "downsample" not in seen:
        return (f"{where}, shortcut branch: this block changes the shape, so the shortcut is "
                "self.downsample(x), which was not called")  # fmt: skip
    if ref.downsample is not None and differs(seen["downsample"][0], x):
        return f"{where}, shortcut branch: downsample must take the block's input x"
    if error is not None:
        return f"{where}: both branches ran, then the forward failed: {error}"
    if not differs(out, main + shortcut):
        return f"{where}: the last ReLU is missing; it comes after the addition"
    if not differs(out, torch.relu(main)):
        return f"{where}, shortcut branch: the shortcut is not added to the main branch"
    return f"{where}: both branches are right, but the output is not relu(main + shortcut)"


def block_inputs(ref, x):
    """{name: input} of every BasicBlock of torchvision's model `ref` on the batch x."""
    inputs = {}
    blocks = [(n, m) for n, m in ref.named_modules() if isinstance(m, BasicBlock_tv)]
    handles = [
        m.register_forward_hook(lambda _m, i, _o, n=n: inputs.__setitem__(n, i[0].clone()))
        for n, m in blocks
    ]
    with torch.no_grad():
        ref(x)
    for handle in handles:
        handle.remove()
    return inputs


BasicBlock_tv = torchvision.models.resnet.BasicBlock


def test_each_block_and_branch_matches_torchvision():
    """Block by block, fed the input torchvision's block receives, each of our BasicBlocks
    of ResNet-18 gives torchvision's output (float64, eval mode); a difference is named by
    its block and branch ("block layer2.0, shortcut branch: ...")."""
    torch.manual_seed(0)
    ref = reference("resnet18", 9).double().eval()
    randomize_batchnorm(ref, seed=1)
    ours = resnet18(num_classes=9).double().eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    for name, x in block_inputs(ref, torch.randn(1, 3, 64, 64, dtype=torch.float64)).items():
        problem = _block_problem(name, ours.get_submodule(name), ref.get_submodule(name), x)
        assert problem is None, problem


@pytest.mark.parametrize(
    ("forward", "words"),
    [
        (lambda s, x: s.relu(s.bn2(s.conv2(s.relu(s.bn1(s.conv1(x))))) + x), "shortcut branch"),
        (lambda s, x: s.bn2(s.conv2(s.relu(s.bn1(s.conv1(x))))) + s.downsample(x),
         "last ReLU is missing"),
        (lambda s, x: s.relu(s.bn2(s.conv2(s.bn1(s.conv1(x)))) + s.downsample(x)),
         "main branch: conv2's input"),
        (lambda s, x: s.relu(s.bn2(s.conv2(s.relu(s.bn1(s.conv1(x)))))), "not called"),
    ],
)  # fmt: skip
def test_block_problems_name_the_block_and_branch(forward, words):
    """The diagnosis itself: four wrong forwards of layer2.0 (which downsamples) are each
    named by the block and the part that is wrong."""
    torch.manual_seed(0)
    ref = reference("resnet18", 9).double().eval()
    ours = resnet18(num_classes=9).double().eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = block_inputs(ref, torch.randn(1, 3, 64, 64, dtype=torch.float64))["layer2.0"]
    block = ours.get_submodule("layer2.0")
    block.forward = forward.__get__(block)
    problem = _block_problem("layer2.0", block, ref.get_submodule("layer2.0"), x)
    assert problem is not None and problem.startswith("block layer2.0") and words in problem


# Stems and shapes ---------------------------------------------------------------------------


def stage_shapes(model, x):
    """The output shape of every top-level stage, recorded with forward hooks."""
    shapes = {}
    names = ("conv1", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc")
    hooks = [
        getattr(model, n).register_forward_hook(
            lambda _m, _i, out, n=n: shapes.__setitem__(n, tuple(out.shape))
        )
        for n in names
    ]
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return shapes


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("imagenet", [(64, 32), (64, 16), (64, 16), (128, 8), (256, 4), (512, 2)]),
        ("small", [(64, 64), (64, 64), (64, 64), (128, 32), (256, 16), (512, 8)]),
    ],
)
def test_stage_shapes_at_64(stem, expected):
    """A 64x64 image goes through the stages with the shapes in the module's comments:
    layer4 at 2x2 with the imagenet stem, 8x8 with the small stem."""
    shapes = stage_shapes(resnet18(stem=stem), torch.randn(1, 3, 64, 64))
    stages = ("conv1", "maxpool", "layer1", "layer2", "layer3", "layer4")
    assert [shapes[n] for n in stages] == [(1, c, s, s) for c, s in expected]
    assert shapes["avgpool"] == (1, 512, 1, 1)
    assert shapes["fc"] == (1, 9)


def test_small_stem_keeps_state_dict_keys():
    """The small stem has torchvision's keys; only conv1.weight differs, (64, 3, 3, 3), and
    maxpool is an nn.Identity."""
    small = resnet18(stem="small")
    ours = {k: v.shape for k, v in small.state_dict().items()}
    ref = {k: v.shape for k, v in reference("resnet18", 9).state_dict().items()}
    assert ours.keys() == ref.keys()
    assert {k for k in ref if ours[k] != ref[k]} == {"conv1.weight"}
    assert ours["conv1.weight"] == (64, 3, 3, 3)
    assert isinstance(small.maxpool, nn.Identity)


@pytest.mark.parametrize("stem", STEMS)
def test_min_size_is_where_layer4_still_sees_more_than_one_pixel(stem):
    """At MIN_SIZE layer3 ends at 2x2 (layer4 downsamples real pixels); one pixel less ends
    at 1x1, which the model refuses."""
    m = MIN_SIZE[stem]
    model = resnet18(stem=stem)
    assert stage_shapes(model, torch.randn(1, 3, m, m))["layer3"][2:] == (2, 2)
    with pytest.raises(PathMNISTError):
        model(torch.randn(1, 3, m - 1, m - 1))


@settings(max_examples=8, deadline=None)
@given(
    batch=batch_sizes,
    size=resnet_image_sizes,
    num_classes=resnet_num_classes,
    stem=st.sampled_from(STEMS),
)
@example(batch=1, size=28, num_classes=2, stem="imagenet")  # layer4 at 1x1, eval mode
@example(batch=2, size=32, num_classes=20, stem="imagenet")  # 1x1 in train mode: 2 values
@example(batch=1, size=28, num_classes=9, stem="small")
def test_finite_logits_of_the_right_shape(batch, size, num_classes, stem):
    """Any batch of 1-8 images of a MedMNIST-like size gives finite (B, num_classes) logits
    with either stem. A batch of one runs in eval mode: train-mode BatchNorm cannot
    normalise a single value per channel (see test_single_image_training_batch_...)."""
    torch.manual_seed(0)
    model = resnet18(num_classes=num_classes, stem=stem).train(batch > 1)
    with torch.no_grad():
        logits = model(torch.randn(batch, 3, size, size))
    assert logits.shape == (batch, num_classes)
    assert torch.isfinite(logits).all()


def test_channels_last_and_torch_compile():
    """A channels_last batch gives the same logits as a contiguous one, and torch.compile
    traces the model (shape checks included) as one graph without breaks."""
    torch.manual_seed(0)
    model = resnet18().eval()
    x = torch.randn(2, 3, 64, 64)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    with torch.no_grad():
        y = model(x)
        torch.testing.assert_close(model(x_cl), y, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(compiled(x_cl), y, rtol=1e-4, atol=1e-5)
    with pytest.raises(PathMNISTError, match="3 channels"):
        torch.compile(model, backend="eager")(torch.randn(2, 1, 64, 64))


# Initialisation -----------------------------------------------------------------------------


def test_initialisation_statistics():
    """Conv weights have mean ~0 and std ~sqrt(2 / fan_out) (Kaiming normal, fan_out,
    relu); BatchNorm starts at weight 1, bias 0; fc keeps PyTorch's uniform default."""
    torch.manual_seed(0)
    model = resnet18()
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            w = m.weight.detach()
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            std = math.sqrt(2 / fan_out)
            assert abs(w.std().item() / std - 1) < 0.05, name
            assert abs(w.mean().item()) < 5 * std / math.sqrt(w.numel()), name
        elif isinstance(m, nn.BatchNorm2d):
            assert torch.equal(m.weight, torch.ones_like(m.weight)), name
            assert torch.equal(m.bias, torch.zeros_like(m.bias)), name
    assert model.fc.weight.abs().max() <= 1 / math.sqrt(512)


@pytest.mark.parametrize("factory", [resnet18, resnet50], ids=["basic", "bottleneck"])
def test_zero_init_residual_blocks_start_as_identity(factory):
    """With zero_init_residual every block's last BatchNorm weight is 0, so its residual
    branch outputs 0: a block without downsample returns a non-negative input unchanged,
    one with downsample returns relu(downsample(x)); without the flag the branch is
    non-zero."""
    torch.manual_seed(0)
    model = factory(zero_init_residual=True).train()
    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    assert len(blocks) == (8 if factory is resnet18 else 16)
    with torch.no_grad():
        for block in blocks:
            last_bn = block.bn3 if isinstance(block, Bottleneck) else block.bn2
            assert torch.equal(last_bn.weight, torch.zeros_like(last_bn.weight))
            x = torch.rand(2, block.conv1.in_channels, 6, 6)  # non-negative, as after a ReLU
            if block.downsample is None:
                assert torch.equal(block(x.clone()), x)
            else:
                assert torch.equal(block(x.clone()), torch.relu(block.downsample(x)))
        # The control: the same kind of block with the default initialisation.
        plain = type(blocks[-1])(blocks[-1].conv1.in_channels, blocks[-1].bn1.num_features)
        x = torch.rand(2, plain.conv1.in_channels, 6, 6)
        assert not torch.equal(plain.train()(x.clone()), x)


# Builders and bad input ---------------------------------------------------------------------


def test_build_matches_the_builders():
    """build(arch, **kw) calls ARCHS[arch] with the keywords."""
    model = build("resnet18", num_classes=5, stem="small")
    assert model.fc.out_features == 5 and model.stem == "small"
    assert set(ARCHS) == {"resnet18", "resnet34", "resnet50"}


def test_unknown_arch_lists_the_choices():
    """An unknown arch raises PathMNISTError naming it and every choice."""
    with pytest.raises(PathMNISTError, match=r"'resnet101'.*resnet18, resnet34, resnet50"):
        build("resnet101")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"stem": "cifar"}, r"unknown stem 'cifar'; choose one of imagenet, small"),
        ({"num_classes": 0}, r"num_classes must be a positive integer, got 0"),
        ({"num_classes": 9.0}, r"num_classes must be a positive integer, got 9.0"),
    ],
)
def test_bad_constructor_arguments(kw, match):
    """A bad stem or class count raises PathMNISTError naming the value and the choices."""
    with pytest.raises(PathMNISTError, match=match):
        resnet18(**kw)


@pytest.mark.parametrize(
    ("stem", "shape", "fix"),
    [
        ("imagenet", (2, 1, 64, 64), "3 channels"),  # grayscale
        ("imagenet", (2, 64, 64, 3), "permute"),  # NHWC, as the loader's uint8 batches
        ("imagenet", (3, 64, 64), "unsqueeze"),  # one image without its batch dimension
        ("imagenet", (2, 3 * 64 * 64), "4-D"),  # flattened
        ("imagenet", (2, 3, 16, 16), "at least 17x17 or use stem='small'"),
        ("imagenet", (2, 3, 64, 16), "at least 17x17"),  # one side too small
        ("small", (2, 3, 4, 4), "at least 5x5"),
    ],
)
def test_bad_input_names_got_and_needed_shapes(stem, shape, fix):
    """A batch of the wrong rank, channel count or size raises PathMNISTError that names
    the shape it got, the shape it needs and the fix."""
    model = resnet18(stem=stem).eval()
    need = f"(B, 3, H, W) with H, W >= {MIN_SIZE[stem]} for stem='{stem}'"
    with pytest.raises(PathMNISTError) as info:
        model(torch.zeros(shape))
    message = str(info.value)
    assert need in message and f"got {shape}" in message and fix in message


def test_single_image_training_batch_with_1x1_layer4_is_refused():
    """In train mode one 32x32 image (layer4 at 1x1) raises PathMNISTError suggesting a
    bigger batch or eval mode; eval mode and a 64x64 image (layer4 at 2x2) both work."""
    model = resnet18().train()
    with pytest.raises(PathMNISTError, match=r"at least 2 images.*model\.eval"):
        model(torch.randn(1, 3, 32, 32))
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 9)
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 9)
