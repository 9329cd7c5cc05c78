"""Grad-CAM: where in the image the network looked for a class.

Implements Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization" (arXiv 1610.02391). For a layer with activations A (K
channels of h x w) and the logit y_c of class c:

    alpha_k = mean over (i, j) of d y_c / d A_k[i, j]     (global-average-pooled gradients)
    L_c     = ReLU(sum_k alpha_k A_k)                      (h, w)

then L_c is bilinearly upsampled to the image size and min-max scaled to [0, 1] per image.
The default layer is `model.layer4`, the last convolutional stage of the ResNet
(pathmnist.model.resnet): 2x2 for a 64x64 image with the imagenet stem, 8x8 with the small one.

How it runs: a forward hook on the layer keeps its output, `torch.autograd.grad` takes the
gradient of the summed target logits with respect to that output only (so no parameter's
`.grad` is touched), and the hook is removed in a `finally`. The model runs in eval mode
(BatchNorm with its running statistics, so one image's map does not depend on the rest of
the batch and no running statistic changes) and its training flag is restored afterwards.
Samples are independent in eval mode, so the gradient of the batch sum gives every image
its own gradient in one backward pass.

Tested (tests/test_gradcam.py) against:
- captum.attr.LayerGradCam(model, layer).attribute(x, target, relu_attributions=True), which
  returns the map at the layer's resolution: compared with `upsample=False, scale=False`.
- pytorch_grad_cam.GradCAM(model, target_layers=[layer]) with ClassifierOutputTarget. Its
  differences, read from its source (base_cam.py, utils/image.py): it min-max scales the
  low-resolution map first (`img / (1e-7 + max)`), resizes it with cv2.resize (float32,
  INTER_LINEAR: half-pixel centres, edges replicated, the same rule as torch's bilinear
  interpolation with align_corners=False), then min-max scales again after averaging the
  layers. Bilinear resizing is affine-equivariant (its weights sum to 1), so that equals
  our resize-then-scale up to the 1e-7 in the denominator and float32 rounding; the test
  uses a tolerance of 1e-5. It also calls `model.eval()` without restoring the mode and
  `loss.backward()`, which fills every parameter's `.grad`; this module does neither.
"""

import numbers

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pathmnist.checks import flag
from pathmnist.errors import PathMNISTError

# The last convolutional stage, by network: a ResNet's layer4; a DenseNet's final
# BatchNorm after dense block 4 (torchvision's features[-1], pytorch-grad-cam's choice).
DEFAULT_LAYERS = ("layer4", "features.norm5")


def resolve_layer(model: nn.Module, layer=None) -> nn.Module:
    """The module to explain: by default the last convolutional stage (`DEFAULT_LAYERS`:
    a ResNet's `layer4`, a DenseNet's `features.norm5`), else a dotted name such as
    "layer3" or "layer4.1.conv2", or a module of `model` itself."""
    if layer is None:
        names = dict(model.named_modules())
        layer = next((n for n in DEFAULT_LAYERS if n in names), DEFAULT_LAYERS[0])
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer)
        except AttributeError:
            raise PathMNISTError(
                f"the model has no submodule named {layer!r}; pass a dotted name from "
                "model.named_modules() such as 'layer4' or 'layer3.1'."
            ) from None
    if isinstance(layer, nn.Module) and any(m is layer for m in model.modules()):
        return layer
    raise PathMNISTError(
        f"layer={type(layer).__name__} is not a module of the model; pass one of its "
        "modules (model.layer4) or a dotted name ('layer4')."
    )


def _check_images(images):
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        got = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
        raise PathMNISTError(
            f"grad_cam got images of type {got}; pass a float tensor (B, 3, H, W) as the "
            "model sees it (after ToFloat and Normalize)."
        )
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] < 1:
        raise PathMNISTError(
            f"grad_cam got images of shape {tuple(images.shape)}; pass a batch (B, 3, H, W)."
        )


def _targets(target, logits):
    """The class to explain for each image, as a (B,) int64 tensor on the logits' device."""
    b, c = logits.shape
    if target is None:
        return logits.argmax(dim=1)  # The predicted class.
    if isinstance(target, bool) or not isinstance(target, (numbers.Integral, torch.Tensor)):
        raise PathMNISTError(
            f"target={target!r} is not allowed; pass None (the predicted class), an int or a "
            "(B,) tensor of class indices."
        )
    t = torch.as_tensor(target, device=logits.device)  # An int or a tensor.
    if t.is_floating_point() or t.dtype == torch.bool or t.ndim > 1:
        raise PathMNISTError(
            f"target has dtype {t.dtype} and shape {tuple(t.shape)}; pass an int or a (B,) "
            "integer tensor of class indices."
        )
    t = t.long().expand(b) if t.ndim == 0 else t.long()
    if t.shape != (b,) or bool(((t < 0) | (t >= c)).any()):
        raise PathMNISTError(
            f"target must hold {b} class indices in [0, {c}); got {target!r}; pass one class "
            "index per image."
        )
    return t


def _minmax(maps):
    """Scale each map of (B, H, W) to [0, 1]; a flat map (all zero after ReLU) becomes 0."""
    flat = maps.flatten(1)  # (B, H * W)
    low = flat.min(dim=1).values[:, None, None]  # (B, 1, 1)
    high = flat.max(dim=1).values[:, None, None]
    span = high - low
    # A flat map has nothing to rank. "Flat" includes a span within float rounding of the
    # values (a 1x1 layer4 map upsampled bilinearly varies by ~1e-7 of its value): scaling
    # that noise to [0, 1] would draw stripes. Such maps become zeros.
    flat_map = span <= 1e-5 * high.abs()
    return torch.where(
        flat_map, torch.zeros_like(maps), (maps - low) / torch.where(flat_map, 1, span)
    )


def _weighted_map(acts, grads):
    """Grad-CAM's map at the layer's resolution, (B, h, w): ReLU(sum_k alpha_k A_k), where
    alpha_k is the mean over positions of the gradient of the logit with respect to A_k.
    acts and grads: (B, K, h, w). (docs/exercises/grad_cam.py asks the learner for it.)"""
    weights = grads.mean(dim=(2, 3), keepdim=True)  # (B, K, 1, 1): alpha_k per image
    return F.relu((weights * acts).sum(dim=1))  # (B, h, w)


def grad_cam(model, images, target=None, layer=None, *, upsample=True, scale=True):
    """Grad-CAM maps (B, H, W) in [0, 1] for a float batch `images` (B, 3, H, W).

    target: None explains the predicted class; an int explains that class for every image;
    a (B,) integer tensor gives one class per image. layer: a module of `model` or a dotted
    name (default "layer4"). With `upsample=False` the map stays at the layer's resolution
    (B, h, w); with `scale=False` it is not min-max scaled (the raw ReLU map, as captum's
    LayerGradCam returns it). The model, its mode and its parameters' `.grad` are left as
    they were.
    """
    if not isinstance(model, nn.Module):
        raise PathMNISTError(f"grad_cam got model={type(model).__name__}; pass an nn.Module.")
    _check_images(images)
    upsample, scale = flag(upsample, "upsample"), flag(scale, "scale")
    module = resolve_layer(model, layer)
    kept = []

    def keep_output(_module, _inputs, output):
        if not isinstance(output, torch.Tensor) or output.ndim != 4:
            raise PathMNISTError(
                f"the chosen layer outputs {type(output).__name__} of shape "
                f"{tuple(getattr(output, 'shape', ()))}; pick a convolutional layer whose "
                "output is (B, K, h, w), such as 'layer4'."
            )
        kept.append(output)
        # Return a copy downstream: a later in-place op (ReLU(inplace=True)) would otherwise
        # overwrite the activation we explain and the gradient would be taken at the wrong
        # point of the graph.
        return output.clone()

    was_training = model.training
    handle = module.register_forward_hook(keep_output)
    try:
        model.eval()
        # Gradients are needed even if the caller is inside torch.no_grad() or the model is
        # frozen: an input that requires grad makes every activation part of the graph.
        with torch.enable_grad():
            x = images.detach().requires_grad_(True)
            logits = model(x)  # (B, C)
            if not kept:
                raise PathMNISTError(
                    "the chosen layer did not run in the model's forward pass; pass a layer "
                    "the forward pass uses, such as 'layer4'."
                )
            if logits.ndim != 2:
                raise PathMNISTError(
                    f"the model returned shape {tuple(logits.shape)}; Grad-CAM needs "
                    "(B, num_classes) logits."
                )
            t = _targets(target, logits.detach())
            score = logits.gather(1, t[:, None]).sum()  # Sum over images of y_c: one backward.
            (grads,) = torch.autograd.grad(score, kept[-1], allow_unused=True)  # (B, K, h, w)
            if grads is None:
                raise PathMNISTError(
                    "the logits do not depend on the chosen layer's output; pick a layer on "
                    "the path from the input to the logits, such as 'layer4'."
                )
    finally:
        handle.remove()
        model.train(was_training)

    cam = _weighted_map(kept[-1].detach(), grads)  # (B, h, w)
    if upsample:
        size = images.shape[-2:]
        cam = F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        cam = cam.clamp_min(0)  # Bilinear weights are >= 0, so this only removes rounding.
    if scale:
        cam = _minmax(cam)
    return cam.to(images.dtype)


def pick_examples(labels, preds, num_classes, seed=0) -> np.ndarray:
    """Indices of up to one correct and one wrong prediction per class (by true label),
    drawn with numpy's default_rng(seed): correct ones first, then wrong ones."""
    rng = np.random.default_rng(seed)
    chosen = []
    for right in (True, False):
        for c in range(num_classes):
            pool = np.flatnonzero((labels == c) & ((preds == labels) == right))
            if len(pool):
                chosen.append(int(rng.choice(pool)))
    return np.asarray(chosen, dtype=np.int64)
