"""MixUp and CutMix: train on mixtures of two images with the matching mixture of labels.

- MixUp (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization", arXiv 1710.09412):
  x' = lam x + (1 - lam) x[perm], t' = lam onehot(y) + (1 - lam) onehot(y[perm]).
- CutMix (Yun et al. 2019, "CutMix: Regularization Strategy to Train Strong Classifiers with
  Localizable Features", arXiv 1905.04899): a box of x is replaced by the same box of
  x[perm]; the box has sides r W and r H with r = sqrt(1 - lam), centred on a uniform
  random pixel and clipped at the border, and lam is then set to the area actually kept,
  1 - box area / (H W), as torchvision does.

lam ~ Beta(alpha, alpha). Every random number is drawn on the CPU from a torch.Generator
(the global one when None), so a seed gives the same mixture on any device. torch.
distributions.Beta takes no generator, but it samples through torch._sample_dirichlet
([alpha, alpha]) (Beta is a 2-class Dirichlet: the Gamma-ratio G1 / (G1 + G2) with
G_i ~ Gamma(alpha)), which does; `draw` calls it with the float32 concentration torchvision
uses. The draws come in torchvision's order (lam; then for CutMix the box centre,
randint(W) then randint(H)) and then the pairing, torch.randperm(B): so after
torch.manual_seed(s), torchvision's MixUp and CutMix sample the same lam and box as `draw`
with torch.Generator().manual_seed(s).

Pairing: Zhang et al. pair each sample with a random permutation of the batch
(randperm); torchvision pairs sample i with sample i - 1 (`batch.roll(1, 0)`, relying on
a shuffled batch). `mix(x, y, lam, perm)` takes any pairing, so the tests replay
torchvision with perm = roll by one, i.e. perm[i] = (i - 1) mod B.

The pairing is drawn on the CPU and reaches the batch's device through
`device.decisions_to` (pinned memory, non_blocking): a plain `.to(device)` from pageable
memory would wait for the GPU to finish its queue every batch.

Tested (tests/test_mixing.py) against torchvision.transforms.v2.MixUp / CutMix on the
same batch after the same seed (their own lam, box and labels code, roll pairing; exact),
plus properties: lam = 1 is the identity, soft targets sum to 1 per row, a generator
state fixes the output.
"""

import math

import torch
import torch.nn.functional as F

from pathmnist.checks import cpu_generator, real, whole
from pathmnist.device import decisions_to
from pathmnist.errors import PathMNISTError


def _check_batch(x, y, num_classes):
    """Raise unless x is float (B, 3, H, W) and y holds (B,) labels or (B, C) soft targets."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 4:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise PathMNISTError(f"mixing got images {got}; pass a float tensor (B, 3, H, W).")
    b = x.shape[0]
    if not isinstance(y, torch.Tensor) or y.shape not in ((b,), (b, num_classes)):
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise PathMNISTError(
            f"mixing got labels {got} for {b} images; pass ({b},) class indices or "
            f"({b}, {num_classes}) soft targets."
        )
    if y.ndim == 1 and (y.is_floating_point() or y.dtype == torch.bool):
        raise PathMNISTError(f"mixing got {y.dtype} labels; pass integer class indices.")
    # Range check on the CPU only: on a GPU it would wait for the device every batch.
    if y.ndim == 1 and y.device.type == "cpu" and b and (y.min() < 0 or y.max() >= num_classes):
        raise PathMNISTError(f"mixing got labels outside [0, {num_classes}); check num_classes.")


def _soft(y, num_classes, dtype):
    """(B, C) targets: one-hot for integer labels, unchanged for soft ones."""
    if y.ndim == 1:
        return F.one_hot(y.long(), num_classes).to(dtype)
    return y.to(dtype)


class _Mixing:
    def __init__(self, alpha=1.0, num_classes=9):
        self.alpha = real(alpha, "alpha", 0.0, low_open=True)
        self.num_classes = whole(num_classes, "num_classes", 1)
        # float32 as torchvision's Beta(torch.tensor([alpha]), ...), so the draws agree.
        self._concentration = torch.tensor([self.alpha, self.alpha], dtype=torch.float32)

    def _lam(self, generator):
        """lam ~ Beta(alpha, alpha), the first coordinate of a Dirichlet([alpha, alpha])."""
        return float(torch._sample_dirichlet(self._concentration, generator=generator)[0])

    def __call__(self, x, y, generator=None):
        """Mix a batch: (x_mixed (B, 3, H, W), soft targets (B, C))."""
        _check_batch(x, y, self.num_classes)
        return self.mix(x, y, *self.draw(x.shape[0], generator, **self._size(x)))

    def _size(self, x):
        return {}

    def __repr__(self):
        return f"{type(self).__name__}(alpha={self.alpha}, num_classes={self.num_classes})"


class MixUp(_Mixing):
    """MixUp(alpha, num_classes)(x, y, generator) -> (lam x + (1 - lam) x[perm], soft targets)."""

    def draw(self, n, generator=None):
        """(lam, perm): lam ~ Beta(alpha, alpha) as a float, perm a CPU permutation of n."""
        n = whole(n, "n", 1)
        cpu_generator(generator, type(self).__name__)
        lam = self._lam(generator)
        return lam, torch.randperm(n, generator=generator)

    def mix(self, x, y, lam, perm):
        """Mix with a given lam and pairing perm (B,): sample i meets sample perm[i]."""
        _check_batch(x, y, self.num_classes)
        lam = real(lam, "lam", 0.0, 1.0)
        perm = decisions_to(perm, x.device)  # Pinned, non_blocking: no wait for the GPU.
        t = _soft(y.to(x.device), self.num_classes, x.dtype)  # (B, C)
        x_mixed = lam * x + (1.0 - lam) * x[perm]  # (B, 3, H, W)
        return x_mixed, lam * t + (1.0 - lam) * t[perm]


class CutMix(_Mixing):
    """CutMix(alpha, num_classes)(x, y, generator) -> (x with a box from x[perm], soft
    targets weighted by the kept area)."""

    def _size(self, x):
        return {"size": tuple(x.shape[-2:])}

    def draw(self, n, generator=None, *, size):
        """(lam, perm, box) for images of size (H, W): box = (x1, y1, x2, y2) in pixels
        (half-open), lam = 1 - box area / (H W), the fraction of each image kept."""
        n = whole(n, "n", 1)
        cpu_generator(generator, type(self).__name__)
        h, w = (whole(s, "size", 1) for s in size)
        lam = self._lam(generator)
        # Box centre uniform over the pixels (torchvision draws x first, then y).
        cx = int(torch.randint(w, (1,), generator=generator))
        cy = int(torch.randint(h, (1,), generator=generator))
        r = 0.5 * math.sqrt(1.0 - lam)  # Half of the box side, as a fraction of the image.
        half_w, half_h = int(r * w), int(r * h)  # Truncated as torchvision does.
        x1, y1 = max(cx - half_w, 0), max(cy - half_h, 0)  # Clipped at the border.
        x2, y2 = min(cx + half_w, w), min(cy + half_h, h)
        lam = 1.0 - (x2 - x1) * (y2 - y1) / (w * h)  # The area actually kept.
        return lam, torch.randperm(n, generator=generator), (x1, y1, x2, y2)

    def mix(self, x, y, lam, perm, box):
        """Paste box (x1, y1, x2, y2) of x[perm] into x; targets weighted by lam."""
        _check_batch(x, y, self.num_classes)
        lam = real(lam, "lam", 0.0, 1.0)
        x1, y1, x2, y2 = box
        perm = decisions_to(perm, x.device)  # Pinned, non_blocking: no wait for the GPU.
        x_mixed = x.clone()  # (B, 3, H, W)
        x_mixed[:, :, y1:y2, x1:x2] = x[perm, :, y1:y2, x1:x2]  # The pasted box.
        t = _soft(y.to(x.device), self.num_classes, x.dtype)  # (B, C)
        return x_mixed, lam * t + (1.0 - lam) * t[perm]


def build_mix(mixup: float, cutmix: float, num_classes: int):
    """MixUp, CutMix, or (both on) one of them per batch, picked by the loader's
    generator, as `mix(x, y, generator) -> (x, soft targets)`; None when both are off."""
    mixers = [
        cls(alpha, num_classes) for cls, alpha in ((MixUp, mixup), (CutMix, cutmix)) if alpha > 0
    ]
    if not mixers:
        return None
    if len(mixers) == 1:
        return mixers[0]

    def either(x, y, generator):
        pick = int(torch.randint(0, 2, (1,), generator=generator))
        return mixers[pick](x, y, generator)

    return either
