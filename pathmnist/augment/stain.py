"""Stain colour: HED colour deconvolution, HED jitter and Macenko stain normalisation.

All three work on float (B, 3, H, W) batches in [0, 1] on any device, as transforms
`t(x, generator=None)` that run after `transforms.ToFloat` and before `Normalize`.

* `rgb_to_hed` / `hed_to_rgb`: colour deconvolution (Ruifrok & Johnston 2001, Anal. Quant.
  Cytol. Histol. 23:291) exactly as skimage.color.rgb2hed / hed2rgb (skimage >= 0.19):
  stains = (ln max(rgb, 1e-6) / ln 1e-6) @ hed_from_rgb, negative stains clipped to 0;
  rgb = clip(exp(ln 1e-6 * stains @ rgb_from_hed), 0, 1). Because of the two clips the
  round trip is exact only where no stain of a pixel is negative and rgb >= 1e-6.
* `HEDJitter`: Tellez et al. 2019 (Medical Image Analysis 58:101544): per image and stain
  h' = h * scale + shift, scale ~ U(1 - sigma, 1 + sigma), shift ~ U(-sigma, sigma). It
  works on the unclipped stains, so sigma 0 is the identity up to float rounding.
* `fit_macenko` / `MacenkoNormalize`: Macenko et al. 2009 (ISBI), with the conventions of
  torchstain's torch backend (Io, alpha, beta, nearest-rank percentiles, H first).

Tested (tests/test_stain.py) against skimage.color.rgb2hed / hed2rgb in float64 to 1e-6,
against torchstain.normalizers.MacenkoNormalizer(backend="torch") on the same images, and
by properties (identity at sigma 0, determinism from the generator, range [0, 1]).
"""

import math

import numpy as np
import torch

from pathmnist import checks
from pathmnist.checks import batch_layout, cpu_generator, float_batch
from pathmnist.device import PerDevice, decisions_to
from pathmnist.errors import PathMNISTError

# skimage.color's matrix (rows: the OD vectors of haematoxylin, eosin, DAB in R, G, B).
RGB_FROM_HED = ((0.65, 0.70, 0.29), (0.07, 0.99, 0.11), (0.27, 0.57, 0.78))
HED_FROM_RGB = tuple(map(tuple, np.linalg.inv(RGB_FROM_HED).tolist()))
_LOG_ADJUST = math.log(1e-6)  # skimage's floor: rgb 1e-6 is stain 1 along (1, 1, 1).
MIN_TISSUE = 16  # Fewer tissue pixels give no stable 3x3 covariance or 1% percentile.
# fit_macenko uses at most this many pixels, evenly strided: it needs about 90 bytes a
# pixel (measured: 0.35 GB for these 4 million; all 70 million of PathMNIST's train split
# would take 6 GB), and millions of pixels pin the 1% and 99% percentiles down closely.
MAX_FIT_PIXELS = 1 << 22


# Both matrices in float64, cast once per device and dtype to the batch's.
_MATRICES = PerDevice(
    torch.tensor(HED_FROM_RGB, dtype=torch.float64), torch.tensor(RGB_FROM_HED, dtype=torch.float64)
)


def _matrix(which, x):
    """HED_FROM_RGB (which=0) or RGB_FROM_HED (which=1), (3, 3), on x's device and dtype."""
    return _MATRICES(x.device, x.dtype)[which]


def _separate(x):
    """Unclipped stains (B, 3, H, W) of rgb x: skimage's separate_stains before its clip."""
    od = torch.log(x.clamp_min(1e-6)) / _LOG_ADJUST  # (B, 3, H, W), 1 at rgb = 1e-6.
    return torch.einsum("bchw,cs->bshw", od, _matrix(0, x))


def _combine(h):
    """rgb (B, 3, H, W) of stains h, clipped to [0, 1]: skimage's combine_stains."""
    log_rgb = _LOG_ADJUST * torch.einsum("bshw,sc->bchw", h, _matrix(1, h))
    return torch.exp(log_rgb).clamp_(0, 1)


def _check_values(x, name, unit=True):
    """Refuse NaN (and, for rgb, values outside [0, 1]: 0..255 floats are a forgotten
    division by 255, which would give silently wrong stains). A data-dependent check, so
    only the public functions make it, not the per-batch transforms."""
    if torch.isnan(x).any():
        raise PathMNISTError(f"{name} got NaN values; pass finite images.")
    if unit and x.numel() and (x.min() < 0 or x.max() > 1):
        raise PathMNISTError(
            f"{name} got values in [{float(x.min()):g}, {float(x.max()):g}]; pass rgb in "
            "[0, 1] (divide 0..255 images by 255, as ToFloat does)."
        )


def rgb_to_hed(x):
    """Haematoxylin, eosin, DAB amounts (B, 3, H, W) >= 0 of rgb x (B, 3, H, W) in [0, 1]."""
    float_batch(x, "rgb_to_hed")
    _check_values(x, "rgb_to_hed")
    return _separate(x).clamp_min_(0)


def hed_to_rgb(h):
    """rgb (B, 3, H, W) in [0, 1] of stain amounts h (B, 3, H, W); inverts rgb_to_hed
    wherever rgb_to_hed did not clip (see the module docstring)."""
    float_batch(h, "hed_to_rgb")
    _check_values(h, "hed_to_rgb", unit=False)
    return _combine(h)


class HEDJitter:
    """Random stain amounts: h' = h * scale + shift per image and stain (Tellez et al. 2019).

    Tellez's sigmas (HED-light 0.05, HED-strong 0.2) were set in skimage < 0.19's stain
    space, whose optical density was -ln(rgb + 2): an offset of 2 in the intensity. There
    a shift b moves a channel of intensity r by about -(r + 2) b m (m: the stain's OD
    vector); here, with OD = -ln(r) / ln(1e6), by -r ln(1e6) b m: the same move needs
    b (r + 2) / (r ln 1e6), 0.22 b at white and 0.36 b at r = 0.5. Their scale also
    multiplied the offset, -ln(r + 2), so it lightened or darkened the whole patch, glass
    included. No single factor maps both, so the presets match the mean absolute RGB change
    of Tellez's original on the synthetic H&E patches: sigma 0.018 (0.37 x 0.05) and 0.085
    (0.43 x 0.2; clipping to [0, 1] damps the strong one). tests/test_stain.py re-measures
    both against a numpy copy of the original (within 15%).
    """

    def __init__(self, sigma, channels=3):
        self.sigma = checks.real(sigma, "HEDJitter sigma", 0.0, 1.0)
        # channels=2 jitters haematoxylin and eosin only: H&E slides hold no DAB.
        if channels not in (2, 3) or isinstance(channels, bool):
            raise PathMNISTError(f"HEDJitter channels={channels!r}; pass 2 (H, E) or 3 (H, E, D).")
        self.channels = int(channels)

    def draw(self, n, generator=None):
        """(scale, shift), each (n, 3) float64 on the CPU: the draws a call would make."""
        cpu_generator(generator, "HEDJitter")
        u = torch.rand(n, 2, 3, generator=generator, dtype=torch.float64) * 2 - 1
        u[:, :, self.channels :] = 0  # The same draws either way; DAB kept when channels=2.
        return 1 + self.sigma * u[:, 0], self.sigma * u[:, 1]

    def __call__(self, x, generator=None):
        float_batch(x, "HEDJitter")
        scale, shift = (decisions_to(t.to(x.dtype), x.device)[:, :, None, None]
                        for t in self.draw(len(x), generator))  # fmt: skip
        return _combine(_separate(x) * scale + shift)  # (B, 3, H, W)

    def __repr__(self):
        return f"HEDJitter(sigma={self.sigma:g}, channels={self.channels})"


# Sigmas for HEDJitter(sigma), e.g. HEDJitter(HED_PRESETS["light"]).
HED_LIGHT = 0.018  # Tellez's HED-light, sigma 0.05 in skimage < 0.19 units.
HED_STRONG = 0.085  # Tellez's HED-strong, sigma 0.2 in those units.
# Lesson 4's sweep starts well below the training split's own per-image spread of mean
# stain amounts (H sd about 0.02 in these units; chapter 12 measures it).
HED_FAINT = 0.005
HED_PRESETS = {"faint": HED_FAINT, "light": HED_LIGHT, "strong": HED_STRONG}


# Macenko et al. 2009, following torchstain's torch backend (from HEnorm_python):
# OD = -ln((I + 1) / Io) for I in 0..255; tissue = pixels with OD >= beta in every
# channel; the plane of the two largest eigenvectors of the tissue's OD covariance; the
# alpha and 100 - alpha percentiles of the angle in that plane give the two stains, the
# one with the larger red OD is haematoxylin; concentrations by least squares, scaled so
# their 99th percentiles match the target's; I = Io exp(-stains @ C), at most 255.


def _percentile(values, counts, q):
    """torchstain's percentile of each row's `counts` smallest values: nearest rank, no
    interpolation, the (1 + round(q / 100 (n - 1)))-th value (round half to even, as
    Python's round); rows (B, P) sorted ascending, invalid entries last."""
    index = torch.round((0.01 * q) * (counts.to(torch.float64) - 1)).long().clamp_(min=0)
    return values.gather(1, index[:, None])[:, 0]  # (B,)


def _top_eigenvectors(cov):
    """The eigenvectors of the two largest eigenvalues of symmetric cov (B, 3, 3), as
    (B, 3, 2) in ascending order. On a GPU, eigh checks its solver's status on the host,
    a hidden synchronisation; so the small (B, 3, 3) matrices go to the host explicitly,
    once per batch (the one wait for the GPU that Macenko normalisation makes), are
    decomposed there, and return through pinned memory without a second wait."""
    if cov.device.type == "cpu":
        return torch.linalg.eigh(cov).eigenvectors[:, :, 1:]
    eigvecs = torch.linalg.eigh(cov.cpu()).eigenvectors[:, :, 1:].contiguous()
    return decisions_to(eigvecs, cov.device)


def _pinv_2x2(r):
    """torch.linalg.pinv of the (B, 2, 2) matrices r = [[cos a1, cos a2], [sin a1, sin a2]]
    in closed form: the inverse, (1 / sin(a2 - a1)) [[sin a2, -cos a2], [-sin a1, cos a1]];
    where pinv of the (3, 2) stains would cut the smaller singular value (ratio to the
    larger at most 3 eps, its rtol), the rank-1 pseudo-inverse r^T / ||r||_F^2 (all tissue
    pixels at one angle, a flat image)."""
    det = r[:, 0, 0] * r[:, 1, 1] - r[:, 1, 0] * r[:, 0, 1]  # (B,): sin(a2 - a1)
    cos_d = (r[:, :, 0] * r[:, :, 1]).sum(dim=1).abs()  # (B,): |cos(a2 - a1)|
    # Singular values of r: sqrt(1 + |cos d|) and |sin d| / sqrt(1 + |cos d|).
    rank1 = det.abs() <= 3 * torch.finfo(r.dtype).eps * (1 + cos_d)
    adj = torch.stack([torch.stack([r[:, 1, 1], -r[:, 0, 1]], 1),
                       torch.stack([-r[:, 1, 0], r[:, 0, 0]], 1)], 1)  # fmt: skip
    inverse = adj / torch.where(rank1, 1.0, det)[:, None, None]
    return torch.where(rank1[:, None, None], r.transpose(1, 2) / 2, inverse)  # ||r||_F^2 = 2


def _macenko(od, alpha, beta):
    """Stains (B, 3, 2), concentrations (B, 2, P), their 99th percentiles (B, 2) and
    whether the image has enough tissue (B,), for optical densities od (B, P, 3)."""
    p = od.shape[1]
    tissue = (od >= beta).all(dim=2)  # (B, P)
    n = tissue.sum(dim=1)  # (B,)
    ok = n >= MIN_TISSUE
    w = tissue.to(od.dtype)[..., None]  # (B, P, 1)
    mean = (od * w).sum(dim=1, keepdim=True) / n.clamp(min=1)[:, None, None]  # (B, 1, 3)
    centred = (od - mean) * w
    cov = centred.transpose(1, 2) @ centred / (n - 1).clamp(min=1)[:, None, None]  # (B, 3, 3)
    eye = torch.eye(3, dtype=od.dtype, device=od.device)
    cov = torch.where(ok[:, None, None], cov, eye)  # Blank images: any finite matrix will do.
    eigvecs = _top_eigenvectors(cov)  # (B, 3, 2)
    # torchstain keeps LAPACK's signs. The stains do not depend on them while the tissue's
    # projections on the top eigenvector share one sign; fixing that sign makes CPU and
    # CUDA (whose solvers may pick other signs) agree elsewhere too.
    flip = torch.where(eigvecs[:, :, 1].sum(dim=1) < 0, -1.0, 1.0).to(od.dtype)  # (B,)
    eigvecs = torch.cat([eigvecs[:, :, :1], eigvecs[:, :, 1:] * flip[:, None, None]], dim=2)
    that = od @ eigvecs  # (B, P, 2)
    phi = torch.atan2(that[..., 1], that[..., 0]).masked_fill_(~tissue, math.inf)
    phi = phi.sort(dim=1).values  # (B, P): tissue angles first.
    angles = torch.stack([_percentile(phi, n, alpha), _percentile(phi, n, 100 - alpha)], 1)
    angles = torch.where(ok[:, None], angles, 0.0)  # (B, 2), finite: pinv refuses inf.
    rot = torch.stack([angles.cos(), angles.sin()], dim=1)  # (B, 2, 2): in-plane directions
    v = eigvecs @ rot  # (B, 3, 2): vMin, vMax
    h_first = (v[:, 0, 0] > v[:, 0, 1])[:, None, None]
    stains = torch.where(h_first, v, v.flip(2))  # (B, 3, 2): haematoxylin, eosin
    rot = torch.where(h_first, rot, rot.flip(2))  # stains = eigvecs @ rot
    # Least squares, pinv(stains) @ od: eigvecs has orthonormal columns, so pinv(stains) =
    # pinv(rot) @ eigvecs^T, and rot is 2x2 (see _pinv_2x2): no SVD, no host sync.
    conc = _pinv_2x2(rot) @ eigvecs.transpose(1, 2) @ od.transpose(1, 2)  # (B, 2, P)
    k = 1 + round(0.01 * 99 * (p - 1))
    max_conc = conc.kthvalue(k, dim=2).values  # (B, 2)
    return stains, conc, max_conc, ok & (max_conc > 0).all(dim=1)


def _optical_density(intensity, io):
    return -torch.log((intensity + 1) / io)  # (..., 3), intensity in 0..255


def _macenko_args(io, alpha, beta):
    return (checks.real(io, "Io", 0.0, low_open=True),
            checks.real(alpha, "alpha", 0.0, 50.0, high_open=True),
            checks.real(beta, "beta", 0.0))  # fmt: skip


def fit_macenko(images, Io=240, alpha=1, beta=0.15):
    """Target (stains (3, 2), max concentrations (2,)) from the pixels of `images`, taken
    as one big image (as torchstain's fit on a mosaic of them): uint8 (N, H, W, 3) numpy
    or tensor in 0..255, or a float (B, 3, H, W) tensor in [0, 1]. Beyond MAX_FIT_PIXELS
    pixels, every k-th pixel is used. Returns CPU tensors."""
    io, alpha, beta = _macenko_args(Io, alpha, beta)
    x = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if batch_layout(x, "fit_macenko") == (1, 2):
        pixels = x.reshape(-1, 3)  # (P, 3) uint8, a view
    else:
        _check_values(x, "fit_macenko")
        pixels = x.permute(0, 2, 3, 1).reshape(-1, 3)  # (P, 3) in [0, 1]
    pixels = pixels[:: max(1, -(-len(pixels) // MAX_FIT_PIXELS))]  # Stride, then copy.
    intensity = pixels.float() if pixels.dtype == torch.uint8 else pixels * 255  # torchstain
    ok = len(pixels) >= MIN_TISSUE
    if ok:
        stains, _, max_conc, ok = _macenko(_optical_density(intensity, io)[None], alpha, beta)
    if not ok:
        raise PathMNISTError(
            f"fit_macenko found fewer than {MIN_TISSUE} tissue pixels (OD >= beta={beta:g} in "
            "every channel); pass images that show stained tissue."
        )
    return stains[0].cpu(), max_conc[0].cpu()


class MacenkoNormalize:
    """Map each image's stains onto the target's (Macenko et al. 2009), as torchstain's
    normalize(stains=False) does, but float in [0, 1] in and out, without rounding.

    Each image's stains are estimated on that image; all steps are batched (eigh, sort,
    least squares over the batch). On a GPU the (B, 3, 3) covariances are decomposed on
    the host: one explicit synchronisation per batch (see _top_eigenvectors). An image
    with fewer than MIN_TISSUE tissue pixels (a blank or background patch: nothing to
    estimate stains from) is returned unchanged.
    """

    def __init__(self, target_stains, target_max_conc, Io=240, alpha=1, beta=0.15):
        self.Io, self.alpha, self.beta = _macenko_args(Io, alpha, beta)
        stains = torch.as_tensor(target_stains, dtype=torch.float64).cpu()
        max_conc = torch.as_tensor(target_max_conc, dtype=torch.float64).cpu()
        good = stains.shape == (3, 2) and max_conc.shape == (2,)
        if not (good and stains.isfinite().all() and (max_conc > 0).all()):
            raise PathMNISTError(
                "MacenkoNormalize needs target stains of shape (3, 2) and positive maximum "
                "concentrations of shape (2,); pass the two values fit_macenko returns."
            )
        self.target_stains, self.target_max_conc = stains, max_conc
        self._targets = PerDevice(stains, max_conc)  # Copied once per device and dtype.

    def __call__(self, x, generator=None):
        float_batch(x, "MacenkoNormalize")
        b, _, h, w = x.shape
        if x.numel() == 0:
            return x
        # eigh and pinv need float32 or float64: half precision is computed in float32.
        y = x if x.dtype in (torch.float32, torch.float64) else x.float()
        target, target_max = self._targets(y.device, y.dtype)  # (3, 2), (2,)
        od = _optical_density(y.permute(0, 2, 3, 1).reshape(b, h * w, 3) * 255, self.Io)
        _, conc, max_conc, ok = _macenko(od, self.alpha, self.beta)
        ratio = target_max / torch.where(ok[:, None], max_conc, 1)  # (B, 2)
        out = self.Io * torch.exp(-(target @ (conc * ratio[:, :, None])))  # (B, 3, P)
        out = out.clamp_(max=255).div_(255).view(b, 3, h, w)
        return torch.where(ok[:, None, None, None], out.to(x.dtype), x)

    def __repr__(self):
        return f"MacenkoNormalize(Io={self.Io:g}, alpha={self.alpha:g}, beta={self.beta:g})"
