"""DenseNet-121 written from plain torch layers, key for key compatible with torchvision.

Implements the densely connected network of Huang et al. 2017, "Densely Connected
Convolutional Networks" (arXiv 1608.06993), in its DenseNet-BC form, exactly as
`torchvision.models.densenet121` builds it. Only `nn.Conv2d`, `nn.BatchNorm2d`, `nn.ReLU`,
`nn.MaxPool2d`, `nn.AvgPool2d`, `nn.AdaptiveAvgPool2d` and `nn.Linear` are used. Module
names (features.conv0, norm0, relu0, pool0, denseblock1..4 of denselayer1.., transition1..3,
norm5; classifier) follow torchvision, so its state_dict loads here with `strict=True` and
back.

Dense connectivity: inside a dense block, layer l receives the concatenation of the
block's input and the outputs of all l - 1 layers before it, and adds `growth_rate` (k = 32)
new channels of its own. A ResNet adds a layer's output to its input (x + F(x)); a DenseNet
keeps every earlier map as it is and appends (cat[x, F1, F2, ...]), so features computed
early are reused, not recomputed, and every layer gets a short path to the loss. A block of
L layers turns C channels into C + L * k. Each layer is a "bottleneck": BN-ReLU-1x1 conv to
4k channels, then BN-ReLU-3x3 conv to k channels, so its cost grows with the input's
channels only through the cheap 1x1 conv. Between blocks a transition halves the channels
(1x1 conv, "compression" 0.5) and the resolution (2x2 average pool).

Shapes for one (B, 3, 64, 64) batch, blocks of (6, 12, 24, 16) layers, k = 32:

    conv0 + pool0    (B, 64, 16, 16)     7x7 stride-2 conv, 3x3 stride-2 max-pool
    denseblock1      (B, 256, 16, 16)    64 + 6 * 32;   transition1 -> (B, 128, 8, 8)
    denseblock2      (B, 512, 8, 8)      128 + 12 * 32; transition2 -> (B, 256, 4, 4)
    denseblock3      (B, 1024, 4, 4)     256 + 24 * 32; transition3 -> (B, 512, 2, 2)
    denseblock4      (B, 1024, 2, 2)     512 + 16 * 32; norm5, ReLU, average pool
    classifier       (B, 9)              from (B, 1024)

`memory_efficient=True` recomputes each layer's concatenation and 1x1 bottleneck in the
backward pass instead of storing it (torch.utils.checkpoint; Pleiss et al. 2017, arXiv
1707.06990): the stored activations of a block grow linearly with its depth instead of
quadratically, at the cost of a second forward through those ops. The outputs and
gradients are the same.

`stem="small"` (as for the ResNet): a 3x3 stride-1 conv0 and no max-pool (pool0 is
`nn.Identity`), so denseblock1 runs at the full 64x64; only conv0.weight changes shape.
Smallest side: 29 with the imagenet stem (torchvision's own `min_size`), 8 with "small":
below that a transition's 2x2 pool gets a map of one pixel and returns none.

Tested against `torchvision.models.densenet121` (tests/test_densenet.py): the same
state_dict keys and shapes, equal float64 logits in eval mode in both directions of a
strict load, equal gradients with and without checkpointing, the parameter count
(6,963,081 with 9 classes), shape properties for both stems, and bad input.
"""

import math

import torch
import torch.utils.checkpoint as cp
from torch import nn

from pathmnist.errors import PathMNISTError
from pathmnist.model.resnet import check_network_args

# Smallest image side for which denseblock4 receives at least one pixel.
MIN_SIZE = {"imagenet": 29, "small": 8}


def _final_side(side, stem):
    """The side of denseblock4's map for an input side: the stem (imagenet: the 7x7 conv and
    the max-pool each ceil(side / 2)), then three transitions (each floor(side / 2))."""
    if stem == "imagenet":
        side = math.ceil(math.ceil(side / 2) / 2)
    return side // 8


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (to bn_size * k) then BN-ReLU-3x3 conv (to k): k new channels."""

    def __init__(self, num_input_features, growth_rate, bn_size, memory_efficient=False):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(
            num_input_features, bn_size * growth_rate, kernel_size=1, stride=1, bias=False
        )
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(
            bn_size * growth_rate, growth_rate, kernel_size=3, stride=1, padding=1, bias=False
        )
        self.memory_efficient = memory_efficient

    def bottleneck(self, *inputs):
        """cat -> norm1 -> relu1 -> conv1: (B, sum of C_i, H, W) -> (B, 4k, H, W). The
        concatenation is the memory-hungry part: a fresh copy of every earlier map."""
        return self.conv1(self.relu1(self.norm1(torch.cat(inputs, 1))))

    def forward(self, features):
        """`features`: the list of the block input and every earlier layer's output."""
        if self.memory_efficient and any(f.requires_grad for f in features):
            # Store only the inputs; recompute cat, norm1 and conv1 during backward.
            out = cp.checkpoint(self.bottleneck, *features, use_reentrant=False)
        else:
            out = self.bottleneck(*features)  # (B, 4k, H, W)
        return self.conv2(self.relu2(self.norm2(out)))  # (B, k, H, W)


class DenseBlock(nn.ModuleDict):
    """`num_layers` DenseLayers, each fed the concatenation of everything before it."""

    def __init__(self, num_layers, num_input_features, bn_size, growth_rate, memory_efficient):
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(
                num_input_features + i * growth_rate, growth_rate, bn_size, memory_efficient
            )
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, x):
        features = [x]  # (B, C, H, W), then L maps of (B, k, H, W)
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)  # (B, C + L * k, H, W)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv (compress the channels) then a 2x2 average pool (halve H and W)."""

    def __init__(self, num_input_features, num_output_features):
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(
            num_input_features, num_output_features, kernel_size=1, stride=1, bias=False
        )
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class Features(nn.Sequential):
    """torchvision's `features` Sequential (the same keys), checking its input first."""

    def __init__(self, stem):
        super().__init__()
        self.stem, self.min_size = stem, MIN_SIZE[stem]

    def _check_input(self, x):
        """Raise PathMNISTError unless x is (B, 3, H, W) with H, W >= min_size (and, in
        train mode, more than one value per channel reaches norm5's BatchNorm)."""
        m = self.min_size
        if x.dim() == 4 and x.shape[1] == 3 and min(x.shape[2], x.shape[3]) >= m:
            h, w = (_final_side(s, self.stem) for s in x.shape[2:])
            if self.training and x.shape[0] * h * w == 1:
                raise PathMNISTError(
                    f"a training batch of shape {tuple(x.shape)} leaves norm5's BatchNorm one "
                    "value per channel; use a batch of at least 2 images or call model.eval()."
                )
            return
        fix = "add the batch dimension with x.unsqueeze(0)" if x.dim() == 3 else None
        if x.dim() == 4 and x.shape[1] != 3 and x.shape[-1] == 3:
            fix = "convert NHWC to NCHW with x.permute(0, 3, 1, 2) (transforms.ToFloat does)"
        fix = fix or f"pass RGB images of at least {m}x{m}"
        raise PathMNISTError(
            f"DenseNet needs a batch of shape (B, 3, H, W) with H, W >= {m} for "
            f"stem={self.stem!r} but got {tuple(x.shape)}; {fix}."
        )

    def forward(self, x):
        """(B, 3, H, W) -> (B, 1024): everything before the classifier."""
        self._check_input(x)
        return super().forward(x)


class DenseNet(nn.Module):
    """Stem, four dense blocks with transitions between them, norm5, pool, classifier.

    `features` is an nn.Sequential as torchvision's, ending in three parameter-free modules
    torchvision applies in `forward` instead (relu5, avgpool, flatten): no state_dict key
    changes, and `features(x)` gives the pooled (B, 1024) vector the training loop expects
    (`fc` is another name for `classifier`, the head the loop applies in float32).
    """

    def __init__(
        self,
        growth_rate=32,
        block_config=(6, 12, 24, 16),
        num_init_features=64,
        bn_size=4,
        num_classes=9,
        stem="imagenet",
        memory_efficient=False,
    ):
        super().__init__()
        check_network_args(stem, num_classes)
        self.stem, self.min_size = stem, MIN_SIZE[stem]
        if stem == "imagenet":  # 7x7 stride 2 then max-pool: H -> ceil(ceil(H / 2) / 2).
            conv0 = nn.Conv2d(3, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)
            pool0 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            conv0 = nn.Conv2d(3, num_init_features, kernel_size=3, stride=1, padding=1, bias=False)
            pool0 = nn.Identity()
        self.features = Features(stem)
        for name, module in (
            ("conv0", conv0),
            ("norm0", nn.BatchNorm2d(num_init_features)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", pool0),
        ):
            self.features.add_module(name, module)
        c = num_init_features  # Channels entering the next block.
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers, c, bn_size, growth_rate, memory_efficient)
            self.features.add_module(f"denseblock{i + 1}", block)
            c += num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", Transition(c, c // 2))
                c //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(c))
        # Not in place: a Grad-CAM hook on norm5 may keep its output for the backward pass.
        self.features.add_module("relu5", nn.ReLU())
        self.features.add_module("avgpool", nn.AdaptiveAvgPool2d((1, 1)))
        self.features.add_module("flatten", nn.Flatten(1))
        self.classifier = nn.Linear(c, num_classes)

        # Initialisation as torchvision ("official init from torch repo"): He et al. 2015
        # normal with the fan_in mode (std = sqrt(2 / fan_in)), BatchNorm as the identity,
        # the classifier's bias 0 (its weight keeps nn.Linear's default).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    @property
    def fc(self):
        """The classifier under the ResNet's name, so the loop and the freezing code treat
        every network alike (a property: no second state_dict entry)."""
        return self.classifier

    def forward(self, x):
        return self.classifier(self.features(x))  # (B, 9): logits, no softmax


def densenet121(num_classes=9, stem="imagenet", memory_efficient=False):
    """DenseNet-121: k = 32, blocks (6, 12, 24, 16), 64 stem channels, bottleneck 4k;
    6,963,081 parameters with 9 classes."""
    return DenseNet(32, (6, 12, 24, 16), 64, 4, num_classes, stem, memory_efficient)
