"""RandAugment, batched on the device: N random operations per image at one magnitude M.

Cubuk et al. 2020, "RandAugment: Practical automated data augmentation with a reduced
search space" (arXiv 1909.13719): instead of searching a policy, apply N operations drawn
uniformly from a fixed list, all at one global magnitude M, so two numbers are tuned
instead of thousands. The list, the magnitudes (31 bins, M in 0..30; translations scale
with the image size) and the sign rule (a signed operation is negated with probability
1/2, `rand() <= 0.5`) are torchvision.transforms.v2.RandAugment's (`OPS`, `magnitudes`),
with its defaults N = 2, M = 9, nearest interpolation and a black fill.

torchvision draws one set of operations per call; here every image draws its own (the
(N, B) operation ids and signed magnitudes, on the CPU from the loader's generator, as the
other augmentations do), and each round applies every operation to the images that drew
it, as one batched op: at most 14 ops per round, whatever the batch size. The operations
are torchvision's tensor kernels rewritten for a per-image magnitude, working on a float
copy of the batch. On a uint8 batch (B, H, W, 3) they keep torchvision's uint8 arithmetic
(truncation after a blend, rounding after a blur or a warp, bit masks as floor divisions),
so a chain of ops matches torchvision's uint8 chain; a float batch (B, 3, H, W) in [0, 1]
follows torchvision's float kernels.

Tested in tests/test_randaugment.py: every operation on a batch with per-image magnitudes
equals torchvision.transforms.v2.functional's operation applied image by image (uint8: max
abs diff <= 1; float: 1e-6), whole RandAugment calls equal a per-image replay through
torchvision, the draw repeats from the generator, and the magnitudes equal torchvision's.
"""

import math

import torch
import torch.nn.functional as F

from pathmnist import checks
from pathmnist.checks import batch_layout, cpu_generator
from pathmnist.device import decisions_to

# torchvision's RandAugment._AUGMENTATION_SPACE, in its order: (name, signed).
OPS = (
    ("Identity", False),
    ("ShearX", True),
    ("ShearY", True),
    ("TranslateX", True),
    ("TranslateY", True),
    ("Rotate", True),
    ("Brightness", True),
    ("Color", True),
    ("Contrast", True),
    ("Sharpness", True),
    ("Posterize", False),
    ("Solarize", False),
    ("AutoContrast", False),
    ("Equalize", False),
)
NUM_BINS = 31  # torchvision's num_magnitude_bins: M in 0..30.


def magnitudes(m, height, width) -> torch.Tensor:
    """(14,) float64: each op's unsigned magnitude at bin m, computed as torchvision does
    (float32 linspace; 0 for the ops without one)."""
    lin = lambda hi, lo=0.0: float(torch.linspace(lo, hi, NUM_BINS)[m])
    posterize = (8 - (torch.arange(NUM_BINS) / ((NUM_BINS - 1) / 4))).round().int()
    table = {
        "ShearX": lin(0.3),
        "ShearY": lin(0.3),
        "TranslateX": lin(150.0 / 331.0 * width),
        "TranslateY": lin(150.0 / 331.0 * height),
        "Rotate": lin(30.0),
        "Brightness": lin(0.9),
        "Color": lin(0.9),
        "Contrast": lin(0.9),
        "Sharpness": lin(0.9),
        "Posterize": float(posterize[m]),  # Bits kept: 8 at M = 0 down to 4 at M = 30.
        "Solarize": lin(0.0, 1.0),  # Threshold as a fraction of the maximum: 1 down to 0.
    }
    return torch.tensor([table.get(name, 0.0) for name, _ in OPS], dtype=torch.float64)


# Geometry: torchvision's inverse affine matrix, then a sampling grid per image ------------


def _inverse_affine(center, angle, translate, shear):
    """torchvision's _get_inverse_affine_matrix (scale 1), as 6 floats."""
    rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    (cx, cy), (tx, ty) = center, translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -(a * math.tan(sx) + math.sin(rot))
    c = math.sin(rot - sy) / math.cos(sy)
    d = math.cos(rot) - c * math.tan(sx)
    m = [d, -b, 0.0, -c, a, 0.0]
    m[2] += cx - m[0] * (cx + tx) - m[1] * (cy + ty)
    m[5] += cy - m[3] * (cx + tx) - m[4] * (cy + ty)
    return m


def _matrix(op, v, h, w):
    """The inverse matrix of geometric op `op` at signed magnitude v (RandAugment's calls:
    shears about the top-left corner, translations by int(v) pixels, rotations by v
    degrees about the centre)."""
    corner = [-w * 0.5, -h * 0.5]  # center=[0, 0] in pixels, relative to the image centre.
    if op == "ShearX":
        return _inverse_affine(corner, 0.0, [0.0, 0.0], [math.degrees(math.atan(v)), 0.0])
    if op == "ShearY":
        return _inverse_affine(corner, 0.0, [0.0, 0.0], [0.0, math.degrees(math.atan(v))])
    if op == "TranslateX":
        return _inverse_affine([0.0, 0.0], 0.0, [float(int(v)), 0.0], [0.0, 0.0])
    if op == "TranslateY":
        return _inverse_affine([0.0, 0.0], 0.0, [0.0, float(int(v))], [0.0, 0.0])
    return _inverse_affine([0.0, 0.0], -(v % 360), [0.0, 0.0], [0.0, 0.0])  # Rotate


def warp(x, op, m, integer):
    """Geometric op per image (nearest, black fill), as torchvision's affine/rotate."""
    b, _, h, w = x.shape
    # Few distinct magnitudes (two in RandAugment: +M and -M): one matrix each.
    values, which = torch.unique(m, return_inverse=True)
    mats = torch.tensor([_matrix(op, v, h, w) for v in values.tolist()], dtype=torch.float64)
    theta = decisions_to(mats[which].to(x.dtype), x.device).view(b, 2, 3)
    # torchvision's _affine_grid: pixel centres (x, y, 1), mapped, normalised to [-1, 1].
    xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, w, device=x.device)
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, h, device=x.device)
    base = torch.stack(torch.broadcast_tensors(xs[None, :], ys[:, None], xs.new_ones(1)), -1)
    scale = torch.tensor([0.5 * w, 0.5 * h], dtype=x.dtype, device=x.device)
    grid = base.to(x.dtype).view(1, h * w, 3).expand(b, -1, -1).bmm(theta.transpose(1, 2) / scale)
    y = F.grid_sample(x, grid.view(b, h, w, 2), "nearest", "zeros", align_corners=False)
    return y.round_() if integer else y


# Colour ops: torchvision's kernels with a (b,) factor -----------------------------------


def _per_image(m, x):
    """(b,) CPU values -> (b, 1, 1, 1) on x's device and dtype."""
    return decisions_to(m.to(x.dtype), x.device).view(-1, 1, 1, 1)


def _cast(y, integer):
    """torchvision's .to(uint8) after clamping: truncation toward zero."""
    return y.trunc_() if integer else y


def _gray(x, integer):
    """Luma (b, 1, H, W) with torchvision's weights, floored on uint8 images."""
    r, g, b = x.unbind(1)
    gray = r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(1)
    return gray.floor_() if integer else gray


def _blend(x, y, f, bound, integer):
    """f x + (1 - f) y, clamped, as torchvision's _blend; f is (b,) float64."""
    ratio, rest = _per_image(f, x), _per_image(1.0 - f, x)
    return _cast(torch.addcmul(x.mul(ratio), y, rest).clamp_(0, bound), integer)


def sharpen(x, f, bound, integer):
    """Blend with torchvision's 3x3 smoothing kernel (1s around a 5, over 13); the border
    pixels keep their values."""
    if x.shape[2] <= 2 or x.shape[3] <= 2:
        return x
    kernel = torch.full((3, 3), 1.0 / 13.0, dtype=x.dtype, device=x.device)
    kernel[1, 1] = 5.0 / 13.0
    blurred = F.conv2d(x, kernel.expand(3, 1, 3, 3), groups=3)  # (b, 3, H - 2, W - 2)
    blurred = blurred.round_() if integer else blurred
    out = x.clone()
    inner = out[..., 1:-1, 1:-1]
    inner.add_((blurred - inner).mul_(_per_image(1.0 - f, x)))
    return _cast(out.clamp_(0, bound), integer)


def posterize(x, bits, integer):
    """Keep the top `bits` (b,) bits of each value (uint8), or torchvision's float rule."""
    if integer:  # x & mask == floor(x / 2**(8 - bits)) * 2**(8 - bits) for 0..255.
        step = _per_image(2.0 ** (8 - bits), x)
        return x.div(step).floor_().mul_(step)
    levels = _per_image(2.0**bits, x)
    return torch.minimum(x.mul(levels).floor_(), levels - 1).clamp_(min=0).div_(levels)


def autocontrast(x, bound, integer):
    """Stretch each channel of each image to [0, bound] (constant channels unchanged)."""
    low, high = x.amin(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)
    flat = high == low
    scale = torch.where(flat, 1.0, (high - low) * (1.0 / bound))
    low = torch.where(flat, 0.0, low)
    return _cast(((x - low) / scale).clamp_(0, bound), integer)


def equalize(x, integer):
    """PIL's histogram equalisation per image and channel, as torchvision's equalize_image
    (float images go through torchvision's uint8 conversion and back)."""
    q = x if integer else x.mul(256.0 - 1e-3).trunc_()  # torchvision's float -> uint8.
    b, c, h, w = q.shape
    flat = q.reshape(b, c, h * w).long()
    hist = torch.zeros(b, c, 256, dtype=torch.int64, device=x.device)
    hist.scatter_add_(2, flat, torch.ones_like(flat))
    cum = hist.cumsum(2)
    # Pixels not of the image's largest value; PIL's step = that count // 255.
    top = hist.gather(2, cum.argmax(2, keepdim=True))
    step = (h * w - top).div_(255, rounding_mode="floor")
    lut = (cum[..., :-1] + step // 2).div_(step.clamp(min=1), rounding_mode="floor")
    lut = torch.cat([torch.zeros_like(lut[..., :1]), lut.clamp_(0, 255)], 2)
    out = torch.where(step > 0, lut.gather(2, flat), flat).view(b, c, h, w).to(x.dtype)
    return out if integer else out / 255


def apply_op(x, op, m, bound, integer):
    """Operation `op` (a name in OPS) on float (b, 3, H, W) with signed magnitudes m (b,)
    float64 on the CPU; `bound` is the largest value (255 for uint8 images, else 1)."""
    if op in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"):
        return warp(x, op, m, integer)
    if op == "Brightness":
        return _cast(x.mul(_per_image(1.0 + m, x)).clamp_(0, bound), integer)
    if op == "Color":
        return _blend(x, _gray(x, integer), 1.0 + m, bound, integer)
    if op == "Contrast":
        return _blend(
            x, _gray(x, integer).mean(dim=(1, 2, 3), keepdim=True), 1.0 + m, bound, integer
        )
    if op == "Sharpness":
        return sharpen(x, 1.0 + m, bound, integer)
    if op == "Posterize":
        return posterize(x, m, integer)
    if op == "Solarize":
        return torch.where(x >= _per_image(bound * m, x), bound - x, x)
    if op == "AutoContrast":
        return autocontrast(x, bound, integer)
    if op == "Equalize":
        return equalize(x, integer)
    return x  # Identity


class RandAugment:
    """Per image, `num_ops` operations from OPS at `magnitude` (torchvision's defaults)."""

    def __init__(self, num_ops=2, magnitude=9):
        self.num_ops = checks.whole(num_ops, "RandAugment num_ops", 0)
        self.magnitude = checks.whole(magnitude, "RandAugment magnitude", 0, NUM_BINS - 1)

    def draw(self, n, height, width, generator=None):
        """(ops, mags): (num_ops, n) int64 op indices into OPS and float64 signed
        magnitudes, on the CPU; each round draws the ops, then the signs."""
        cpu_generator(generator, "RandAugment")
        table = magnitudes(self.magnitude, height, width)
        signed = torch.tensor([s for _, s in OPS])
        ops = torch.empty(self.num_ops, n, dtype=torch.int64)
        mags = torch.empty(self.num_ops, n, dtype=torch.float64)
        for r in range(self.num_ops):
            ops[r] = torch.randint(len(OPS), (n,), generator=generator)
            flip = (torch.rand(n, generator=generator) <= 0.5) & signed[ops[r]]
            mags[r] = torch.where(flip, -table[ops[r]], table[ops[r]])
        return ops, mags

    def __call__(self, x, generator=None):
        h, w = batch_layout(x, "RandAugment")
        integer = x.dtype == torch.uint8
        ops, mags = self.draw(len(x), x.shape[h], x.shape[w], generator)
        y = x.permute(0, 3, 1, 2).float() if integer else x.clone()  # (B, 3, H, W)
        bound = 255.0 if integer else 1.0
        for r in range(self.num_ops):
            for k, (name, _) in enumerate(OPS):
                chosen = (ops[r] == k).nonzero().view(-1)  # CPU: no wait for the GPU.
                if name == "Identity" or len(chosen) == 0:
                    continue
                idx = decisions_to(chosen, y.device)
                out = apply_op(y.index_select(0, idx), name, mags[r, chosen], bound, integer)
                y = y.index_copy(0, idx, out)
        if integer:  # Back to the uint8 (B, H, W, 3) batch; the values are whole already.
            return y.to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        return y

    def __repr__(self):
        return f"RandAugment(num_ops={self.num_ops}, magnitude={self.magnitude})"
