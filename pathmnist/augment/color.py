"""ColorJitter: random brightness, contrast, saturation and hue, batched, per-sample factors.

torchvision.transforms.v2.ColorJitter draws one set of factors per call and applies the
four adjustments in a random order; here every image of a float (B, 3, H, W) batch in
[0, 1] gets its own factors, drawn on the CPU from the torch.Generator (so a seed gives
the same batch on any device), and the order is fixed: brightness, contrast, saturation,
hue. The ranges are torchvision's: a factor in [max(0, 1 - v), 1 + v] for brightness,
contrast and saturation, a hue shift in [-hue, hue] with hue <= 0.5 (a fraction of the
colour wheel). The adjustments are torchvision's formulas (ITU-R 601-2 luma weights
0.2989, 0.587, 0.114; its RGB <-> HSV conversion), written for a batch of factors. Unlike
torchvision, hue is computed in the input's dtype (torchvision always uses float32).

Tested (tests/test_color.py) against torchvision.transforms.v2.functional.adjust_brightness,
adjust_contrast, adjust_saturation and adjust_hue applied image by image with the same
factors (float64 to 1e-12 without hue; float32 to 1e-5 with it), and by properties.
"""

import torch

from pathmnist import checks
from pathmnist.checks import cpu_generator, float_batch
from pathmnist.device import PerDevice, decisions_to

# Which of v, p, q, t is R, G, B in each of the six hue sextants (torchvision's table).
_SEXTANTS = ((0, 2, 1, 1, 3, 0), (3, 0, 0, 2, 1, 1), (1, 1, 3, 0, 0, 2))
_SEXTANT_TABLE = PerDevice(torch.tensor(_SEXTANTS))
# ColorJitter(**COLOR_PRESET) changes the synthetic H&E patches' pixels by as much on
# average as HEDJitter(HED_LIGHT) does (0.078 in [0, 1] units; tests/test_color.py), so
# the two augmentations compare at equal strength.
COLOR_PRESET = {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.05}


def _grayscale(x):
    """Luma (B, 1, H, W) of rgb (B, 3, H, W), as torchvision's rgb_to_grayscale."""
    r, g, b = x.unbind(dim=1)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(1)


def _blend(x, y, ratio):
    """ratio * x + (1 - ratio) * y in [0, 1]; ratio (B, 1, 1, 1)."""
    return (x * ratio).add_(y * (1 - ratio)).clamp_(0, 1)


def _rgb_to_hsv(x):
    """(B, 3, H, W) rgb -> hsv, h in [0, 1); torchvision's (after Pillow's) formulas."""
    r, g, _ = x.unbind(dim=1)
    minc, maxc = torch.aminmax(x, dim=1)  # (B, H, W) each
    grey = maxc == minc  # Hue and saturation are 0 there; avoid dividing by zero.
    ones = torch.ones_like(maxc)
    span = maxc - minc
    s = span / torch.where(grey, ones, maxc)
    rc, gc, bc = ((maxc.unsqueeze(1) - x) / torch.where(grey, ones, span).unsqueeze(1)).unbind(1)
    max_r, max_g = maxc == r, maxc == g
    hr = (bc - gc) * max_r
    hg = (rc + 2.0 - bc) * (max_g & ~max_r)
    hb = (gc + 4.0 - rc) * (~max_r & ~max_g)
    h = (hr + hg + hb).mul_(1.0 / 6.0).add_(1.0).fmod_(1.0)
    return h, s, maxc


def _hsv_to_rgb(h, s, v):
    """Three (B, H, W) maps -> (B, 3, H, W) rgb; torchvision's formulas."""
    h6 = h * 6
    i = torch.floor(h6)
    f = h6 - i
    sxf, one_minus_s = s * f, 1.0 - s
    q = ((1.0 - sxf) * v).clamp_(0.0, 1.0)
    t = ((sxf + one_minus_s) * v).clamp_(0.0, 1.0)
    p = (one_minus_s * v).clamp_(0.0, 1.0)
    vpqt = torch.stack((v, p, q, t), dim=1)  # (B, 4, H, W)
    table = _SEXTANT_TABLE(h.device)[0]  # (3, 6) int64
    select = table[:, i.to(torch.long).remainder_(6)].moveaxis(0, 1)  # (B, 3, H, W)
    return vpqt.gather(1, select)


def adjust_hue(x, hue):
    """Rotate the hue of image i by hue[i] (B,) turns of the colour wheel."""
    h, s, v = _rgb_to_hsv(x)
    return _hsv_to_rgb(h.add_(hue[:, None, None]).remainder_(1.0), s, v)


class ColorJitter:
    """Per-image random brightness, contrast, saturation, hue (torchvision's ranges)."""

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0):
        self.brightness = checks.real(brightness, "brightness", 0.0)
        self.contrast = checks.real(contrast, "contrast", 0.0)
        self.saturation = checks.real(saturation, "saturation", 0.0)
        self.hue = checks.real(hue, "hue", 0.0, 0.5)

    def draw(self, n, generator=None):
        """(n, 4) float64 CPU factors (brightness, contrast, saturation, hue): the draws a
        call would make; an unused one is 1 (or hue 0)."""
        cpu_generator(generator, "ColorJitter")
        u = torch.rand(n, 4, generator=generator, dtype=torch.float64)
        lo = torch.tensor([max(0.0, 1 - v) for v in self._scales()] + [-self.hue])
        hi = torch.tensor([1 + v for v in self._scales()] + [self.hue])
        return lo.double() + (hi - lo).double() * u

    def _scales(self):
        return self.brightness, self.contrast, self.saturation

    def __call__(self, x, generator=None):
        float_batch(x, "ColorJitter")
        factors = decisions_to(self.draw(len(x), generator).to(x.dtype), x.device)
        f = factors[:, :, None, None, None]  # (B, 4, 1, 1, 1)
        if self.brightness:
            x = (x * f[:, 0]).clamp_(0, 1)
        if self.contrast:
            x = _blend(x, _grayscale(x).mean(dim=(1, 2, 3), keepdim=True), f[:, 1])
        if self.saturation:
            x = _blend(x, _grayscale(x), f[:, 2])
        if self.hue:
            x = adjust_hue(x, factors[:, 3])
        return x

    def __repr__(self):
        return (f"ColorJitter(brightness={self.brightness:g}, contrast={self.contrast:g}, "
                f"saturation={self.saturation:g}, hue={self.hue:g})")  # fmt: skip
