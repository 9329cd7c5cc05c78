"""RandStainNA: stain augmentation with targets drawn from the training split's own stains.

Shen et al., "RandStainNA: Learning Stain-Agnostic Features from Histology Slides by
Bridging Stain Augmentation and Normalization", MICCAI 2022. In a colour space (the paper
tries LAB, HSV and HED; here HED, the stain module's colour deconvolution, unclipped), each
image has per-channel statistics: the mean mu_c and standard deviation sigma_c over its
pixels. `fit` gathers them over the training split and keeps, per channel, the mean and
standard deviation of the images' mu_c and of their sigma_c (the paper's Gaussian fit of
the "virtual template" distribution). `RandStainNA` then draws, per image and channel, a
target mu'_c ~ N(mean(mu_c), std(mu_c)) and sigma'_c ~ N(mean(sigma_c), std(sigma_c))
(the paper's std_hyper = 0) and maps the image's channel by Reinhard's equation

    x'_c = (x_c - mu_c) / sigma_c * sigma'_c + mu'_c

so each augmented image carries statistics drawn from the distribution the training split
spans: stain normalisation to a random template, augmentation within the data's own range.
A drawn sigma'_c below zero is clipped to zero (the paper's code clips it to a small
positive value; at the spreads of a real training split neither happens in practice).
With zero spread every image is mapped to the mean template: plain Reinhard normalisation.

Tested in tests/test_randstainna.py against a numpy transcription of the equations above,
and by hypothesis properties: the augmented per-image statistics are the drawn targets,
the drawn targets follow the fitted distribution, zero spread gives the mean template,
a seed gives the same batch.
"""

import numpy as np
import torch

from pathmnist.augment import stain
from pathmnist.checks import cpu_generator, float_batch
from pathmnist.device import decisions_to
from pathmnist.errors import PathMNISTError

CHUNK = 512  # Images per step of `fit`: a float64 HED copy of 512 64x64 images is 50 MB.
EPS = 1e-6  # A constant channel has sigma 0: divide by this instead (the image goes flat).


def image_stats(h):
    """Per-image, per-channel mean and std (population) of stain amounts h (B, 3, H, W):
    two (B, 3) tensors."""
    flat = h.flatten(2)  # (B, 3, H*W)
    return flat.mean(dim=2), flat.std(dim=2, correction=0)


def fit(images) -> dict:
    """The training split's stain statistics: uint8 images (N, H, W, 3) -> {"mean_mu",
    "std_mu", "mean_sigma", "std_sigma"}, each a list of 3 floats (H, E, D), the mean and
    standard deviation over images of each image's stain mean and stain std."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or not len(images):
        raise PathMNISTError(
            f"randstainna.fit got images of dtype {images.dtype} and shape {images.shape}; "
            "pass the training split's uint8 images (N, H, W, 3)."
        )
    mus, sigmas = [], []
    for start in range(0, len(images), CHUNK):
        x = torch.from_numpy(images[start : start + CHUNK]).permute(0, 3, 1, 2)
        mu, sigma = image_stats(stain._separate(x.to(torch.float64) / 255))
        mus.append(mu)
        sigmas.append(sigma)
    mu, sigma = torch.cat(mus), torch.cat(sigmas)  # (N, 3) each
    return {
        "mean_mu": mu.mean(0).tolist(),
        "std_mu": mu.std(0, correction=0).tolist(),
        "mean_sigma": sigma.mean(0).tolist(),
        "std_sigma": sigma.std(0, correction=0).tolist(),
    }


def _vector(stats, key):
    try:
        v = np.asarray(stats[key], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        v = np.full(1, np.nan)
    if v.shape != (3,) or not np.isfinite(v).all() or (key.startswith("std") and (v < 0).any()):
        raise PathMNISTError(
            f"RandStainNA needs {key} as three finite numbers (stds >= 0); pass the dict "
            "randstainna.fit returns for the training split."
        )
    return torch.tensor(v)


class RandStainNA:
    """Map each image's HED statistics to a target drawn from the fitted distribution.

    A transform `t(x, generator=None)` on float (B, 3, H, W) in [0, 1], run after ToFloat
    and before Normalize, like HEDJitter."""

    def __init__(self, stats: dict):
        self.stats = {
            k: _vector(stats, k) for k in ("mean_mu", "std_mu", "mean_sigma", "std_sigma")
        }

    def draw(self, n, generator=None):
        """(mu', sigma'), each (n, 3) float64 on the CPU: the targets a call would draw."""
        cpu_generator(generator, "RandStainNA")
        z = torch.randn(n, 2, 3, generator=generator, dtype=torch.float64)
        s = self.stats
        mu = s["mean_mu"] + s["std_mu"] * z[:, 0]
        sigma = (s["mean_sigma"] + s["std_sigma"] * z[:, 1]).clamp_min(0)
        return mu, sigma

    def apply_hed(self, h, mu_t, sigma_t):
        """Reinhard's map of stain amounts h (B, 3, H, W) to targets (B, 3) each."""
        mu, sigma = image_stats(h)
        scale = (sigma_t / sigma.clamp_min(EPS))[:, :, None, None]
        return (h - mu[:, :, None, None]) * scale + mu_t[:, :, None, None]

    def __call__(self, x, generator=None):
        float_batch(x, "RandStainNA")
        mu_t, sigma_t = (
            decisions_to(t.to(x.dtype), x.device) for t in self.draw(len(x), generator)
        )
        return stain._combine(self.apply_hed(stain._separate(x), mu_t, sigma_t))

    def __repr__(self):
        mu = ", ".join(f"{v:.4f}" for v in self.stats["mean_mu"].tolist())
        return f"RandStainNA(HED, mean template mu=({mu}))"
