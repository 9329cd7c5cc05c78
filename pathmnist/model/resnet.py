"""ResNet-18/34/50 written from plain torch layers, key for key compatible with torchvision.

Implements the residual networks of He et al. 2015, "Deep Residual Learning for Image
Recognition" (arXiv 1512.03385), exactly as `torchvision.models.resnet` builds them
(torchvision's "ResNet v1.5": a Bottleneck puts its stride on the 3x3 conv, not the first
1x1). Only `nn.Conv2d`, `nn.BatchNorm2d`, `nn.ReLU`, `nn.MaxPool2d`, `nn.AdaptiveAvgPool2d`
and `nn.Linear` are used. Module names (conv1, bn1, relu, maxpool, layer1..4, avgpool, fc;
downsample = Sequential(conv1x1, bn)) follow torchvision, so its state_dict loads here
with `strict=True` and back.

Tested against `torchvision.models.resnet18/34/50` (tests/test_resnet.py): the same
state_dict keys and shapes, equal float64 logits in eval mode, equal float64 gradients of
every parameter in train mode, the same parameter counts (resnet18 with 9 classes:
11,181,129), torchvision's initialisation statistics, and zero-init residual blocks
being the identity.

Two stems (`stem=`):
- "imagenet": 7x7 stride-2 conv, then 3x3 stride-2 max-pool, as torchvision and the seed
  project; the total stride is 32, so a 64x64 image reaches layer4 at 2x2.
- "small": 3x3 stride-1 conv and no max-pool (`maxpool` is `nn.Identity`, so the
  state_dict keys stay the same; only conv1.weight changes shape, (64, 3, 3, 3)), as
  MedMNIST's own ResNet for 28x28 images (Yang et al. 2023, MedMNIST v2). The total stride
  is 8, so a 64x64 image reaches layer4 at 8x8: about 15x the compute (resnet18, one 64x64
  image, forward: 4.44 GFLOPs against 0.296, ratio 15.0, counted by
  torch.utils.flop_counter.FlopCounterMode; 15.5 for resnet34 and resnet50).

Input sizes: every padded conv and pool outputs at least one pixel, so the network runs
on any H, W >= 1. It is only meaningful while layer4 still receives more than one pixel:
below that its 3x3 kernels see one pixel ringed by zero padding. Hence the minimum side is
half the total stride plus one: 17 for "imagenet", 5 for "small" (MIN_SIZE). In train
mode a single image whose layer4 map is 1x1 (up to 32x32 with the imagenet stem) is refused
too: BatchNorm cannot normalise one value per channel.
"""

import torch
from torch import nn

from pathmnist.config import STEMS
from pathmnist.errors import PathMNISTError

# Downsampling before avgpool: imagenet = conv1 (2) x maxpool (2) x layer2..4 (2 each).
TOTAL_STRIDE = {"imagenet": 32, "small": 8}
# Smallest side for which layer3 ends at >= 2x2, so layer4 downsamples real pixels.
MIN_SIZE = {stem: stride // 2 + 1 for stem, stride in TOTAL_STRIDE.items()}


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1: keeps H, W at stride 1, halves them at stride 2.

    No bias: the BatchNorm that always follows has its own shift.
    """
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution: mixes channels per pixel (and subsamples at stride 2)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs plus the shortcut: y = relu(F(x) + x) (ResNet-18/34).

    x -> conv3x3(stride) -> bn1 -> relu -> conv3x3 -> bn2 -> (+ shortcut) -> relu,
    where the shortcut is x itself, or `downsample(x)` = conv1x1(stride) + bn when the
    shape changes.
    """

    expansion = 1  # Output channels = planes * expansion.

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x  # (B, inplanes, H, W)
        out = self.relu(self.bn1(self.conv1(x)))  # (B, planes, H/stride, W/stride)
        out = self.bn2(self.conv2(out))  # (B, planes, H/stride, W/stride): F(x)
        if self.downsample is not None:
            identity = self.downsample(x)  # Match F(x)'s shape: (B, planes, H/s, W/s).
        out += identity  # The residual connection: F(x) + x.
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), plus the shortcut (ResNet-50 and deeper).

    x -> conv1x1 -> bn1 -> relu -> conv3x3(stride) -> bn2 -> relu -> conv1x1 -> bn3
      -> (+ shortcut) -> relu. The stride sits on the 3x3 conv as in torchvision.
    """

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x  # (B, inplanes, H, W)
        out = self.relu(self.bn1(self.conv1(x)))  # (B, planes, H, W)
        out = self.relu(self.bn2(self.conv2(out)))  # (B, planes, H/stride, W/stride)
        out = self.bn3(self.conv3(out))  # (B, 4 * planes, H/stride, W/stride): F(x)
        if self.downsample is not None:
            identity = self.downsample(x)  # (B, 4 * planes, H/stride, W/stride)
        out += identity
        return self.relu(out)


def check_network_args(stem, num_classes) -> None:
    """The arguments every network of the course takes (ResNet and DenseNet alike): a stem
    from config.STEMS and a positive whole number of classes."""
    if stem not in STEMS:
        raise PathMNISTError(f"unknown stem {stem!r}; choose one of {', '.join(STEMS)}.")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise PathMNISTError(
            f"num_classes must be a positive integer, got {num_classes!r}; pass the "
            "number of labels in the dataset (9 for PathMNIST)."
        )


class ResNet(nn.Module):
    """Stem, four stages of residual blocks, global average pool, linear classifier.

    `layers` gives the number of blocks per stage ([2, 2, 2, 2] is ResNet-18). Stage i
    has 64 * 2**i * block.expansion output channels; stages 2-4 halve H and W.
    """

    def __init__(self, block, layers, num_classes=9, stem="imagenet", zero_init_residual=False):
        super().__init__()
        check_network_args(stem, num_classes)
        self.stem = stem
        self.min_size = MIN_SIZE[stem]
        self.inplanes = 64  # Channels entering the next stage; _make_layer updates it.
        if stem == "imagenet":
            # 7x7 stride 2, padding 3: H -> ceil(H / 2); then max-pool: -> ceil(H / 4).
            self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        else:
            # 3x3 stride 1 keeps full resolution; no max-pool (Identity holds the name).
            self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        if stem == "imagenet":
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.maxpool = nn.Identity()
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        # Initialisation as torchvision: He et al. 2015 (arXiv 1502.01852) normal with
        # std = sqrt(2 / fan_out), fan_out = out_channels * k * k, keeps the backward signal's
        # variance constant through ReLU layers; BatchNorm starts as the identity map.
        # nn.Linear keeps PyTorch's default (uniform, bound 1 / sqrt(fan_in)), as torchvision.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            # Goyal et al. 2017 (arXiv 1706.02677): a zero gamma in the last BN of each
            # residual branch makes F(x) = 0, so each block starts as relu(x + 0).
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(self, block, planes, blocks, stride=1):
        """One stage: the first block may change stride and channels, the rest keep them."""
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            # The shortcut must match F(x)'s shape: a strided 1x1 projection plus BN
            # (option B of He et al. 2015).
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _check_input(self, x):
        """Raise PathMNISTError unless x is (B, 3, H, W) with H, W >= min_size.

        Shape checks only: no data-dependent test, so no GPU sync and no graph break
        under torch.compile; channels_last tensors report the same logical NCHW shape.
        """
        m = self.min_size
        if not x.is_floating_point():  # A uint8 batch: conv2d would fail on its dtype.
            raise PathMNISTError(
                f"ResNet got a {x.dtype} batch; convert it to a normalised float batch first "
                "(transforms.ToFloat and Normalize, or the run's eval transform)."
            )
        if x.dim() == 4 and x.shape[1] == 3 and x.shape[2] >= m and x.shape[3] >= m:
            # Train-mode BatchNorm needs more than one value per channel; layer4's output,
            # ceil(H / stride) x ceil(W / stride), is the smallest map it normalises.
            t = TOTAL_STRIDE[self.stem]
            if self.training and x.shape[0] * -(-x.shape[2] // t) * -(-x.shape[3] // t) == 1:
                raise PathMNISTError(
                    f"a training batch of shape {tuple(x.shape)} leaves layer4's BatchNorm one "
                    "value per channel; use a batch of at least 2 images (BatchLoader's "
                    "drop_last=True drops a last batch of 1) or call model.eval() first."
                )
            return
        need = f"(B, 3, H, W) with H, W >= {m} for stem={self.stem!r}"
        got = tuple(x.shape)
        if x.dim() == 3:
            fix = "add the batch dimension with x.unsqueeze(0)"
        elif x.dim() != 4:
            fix = "pass a 4-D batch of RGB images"
        elif x.shape[1] != 3 and x.shape[-1] == 3:
            fix = "convert NHWC to NCHW with x.permute(0, 3, 1, 2) (transforms.ToFloat does)"
        elif x.shape[1] != 3:
            fix = "convert the images to 3 channels (grayscale: x.expand(-1, 3, -1, -1))"
        else:
            fix = f"resize the images to at least {m}x{m}"
            fix += " or use stem='small'" if self.stem == "imagenet" else ""
        raise PathMNISTError(f"ResNet needs a batch of shape {need} but got {got}; {fix}.")

    def forward(self, x):
        return self.fc(self.features(x))  # (B, 9): logits, no softmax (the loss applies it)

    def features(self, x):
        """Everything before the classifier: (B, 3, H, W) -> pooled features (B, 512).

        Split out so the training loop can run it under bf16 autocast and the classifier
        in float32 (logits and probabilities keep 24 mantissa bits instead of 8).
        """
        # Shape comments: ResNet-18, 9 classes, a (B, 3, 64, 64) batch; [small stem].
        self._check_input(x)
        x = self.relu(self.bn1(self.conv1(x)))  # (B, 64, 32, 32)  [(B, 64, 64, 64)]
        x = self.maxpool(x)  # (B, 64, 16, 16)  [Identity: (B, 64, 64, 64)]
        x = self.layer1(x)  # (B, 64, 16, 16)  [(B, 64, 64, 64)]; Bottleneck: 256 channels
        x = self.layer2(x)  # (B, 128, 8, 8)  [(B, 128, 32, 32)]; Bottleneck: 512
        x = self.layer3(x)  # (B, 256, 4, 4)  [(B, 256, 16, 16)]; Bottleneck: 1024
        x = self.layer4(x)  # (B, 512, 2, 2)  [(B, 512, 8, 8)]; Bottleneck: 2048
        x = self.avgpool(x)  # (B, 512, 1, 1): the mean over every position
        return torch.flatten(x, 1)  # (B, 512); Bottleneck: 2048


def resnet18(num_classes=9, stem="imagenet", zero_init_residual=False):
    """ResNet-18: BasicBlocks [2, 2, 2, 2]; 11,181,129 parameters with 9 classes."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, stem, zero_init_residual)


def resnet34(num_classes=9, stem="imagenet", zero_init_residual=False):
    """ResNet-34: BasicBlocks [3, 4, 6, 3]."""
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, stem, zero_init_residual)


def resnet50(num_classes=9, stem="imagenet", zero_init_residual=False):
    """ResNet-50: Bottlenecks [3, 4, 6, 3], 2048 features into fc."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, stem, zero_init_residual)
