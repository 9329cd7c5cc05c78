"""Tests for pathmnist.augment.mixing: torchvision.transforms.v2.MixUp / CutMix as the oracle (the
same seed makes both sample the same lam and box; torchvision's "roll by one" pairing is
replayed through `mix`), a Kolmogorov-Smirnov check of lam ~ Beta(alpha, alpha), hypothesis
properties (identity at lam = 1, rows summing to 1, determinism), and bad inputs."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats
from torchvision.transforms import v2

from pathmnist.augment.mixing import CutMix, MixUp
from pathmnist.errors import PathMNISTError

C = 9


def batch(b, h, w, seed, soft=False):
    """float32 images (B, 3, H, W) in [0, 1] and (B,) labels or (B, C) soft targets."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, h, w, generator=g)
    y = torch.randint(0, C, (b,), generator=g)
    if soft:
        y = torch.softmax(torch.randn(b, C, generator=g), dim=1)
    return x, y


def roll(b):
    """torchvision's pairing: sample i is mixed with sample i - 1 (batch.roll(1, 0))."""
    return (torch.arange(b) - 1) % b


batches = {
    "b": st.integers(1, 6),
    "h": st.integers(1, 10),
    "w": st.integers(1, 10),
    "seed": st.integers(0, 2**16),
    "alpha": st.sampled_from([0.1, 0.4, 1.0, 2.5]),
    "soft": st.booleans(),
}


@settings(deadline=None, max_examples=25)
@given(**batches)
@example(b=1, h=1, w=1, seed=0, alpha=1.0, soft=False)
def test_mixup_equals_torchvision(b, h, w, seed, alpha, soft):
    """After torch.manual_seed(s) torchvision's MixUp samples the same lam as our draw from
    Generator().manual_seed(s); with its roll pairing the images and targets are equal
    bit for bit."""
    x, y = batch(b, h, w, seed, soft)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        ref_x, ref_t = v2.MixUp(alpha=alpha, num_classes=C)(x, y)
    mixup = MixUp(alpha, C)
    lam, perm = mixup.draw(b, torch.Generator().manual_seed(seed))
    assert sorted(perm.tolist()) == list(range(b)) and 0.0 <= lam <= 1.0
    ours_x, ours_t = mixup.mix(x, y, lam, roll(b))
    assert torch.equal(ours_x, ref_x) and torch.equal(ours_t, ref_t)


@settings(deadline=None, max_examples=25)
@given(**batches)
@example(b=2, h=1, w=1, seed=0, alpha=1.0, soft=False)
def test_cutmix_equals_torchvision(b, h, w, seed, alpha, soft):
    """torchvision's CutMix after the same seed: the same lam, box centre and clipped box,
    so equal images and targets (weighted by the area kept) with its roll pairing."""
    x, y = batch(b, h, w, seed, soft)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        ref_x, ref_t = v2.CutMix(alpha=alpha, num_classes=C)(x, y)
    cutmix = CutMix(alpha, C)
    lam, perm, box = cutmix.draw(b, torch.Generator().manual_seed(seed), size=(h, w))
    assert sorted(perm.tolist()) == list(range(b))
    x1, y1, x2, y2 = box
    assert 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h
    assert lam == pytest.approx(1 - (x2 - x1) * (y2 - y1) / (h * w), abs=1e-15)
    ours_x, ours_t = cutmix.mix(x, y, lam, roll(b), box)
    assert torch.equal(ours_x, ref_x) and torch.equal(ours_t, ref_t)


@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_lambda_follows_beta_alpha_alpha(alpha):
    """2,000 draws of lam pass a Kolmogorov-Smirnov test against scipy's Beta(alpha, alpha)
    (p > 0.001 for this fixed seed) and have its mean 1/2."""
    g = torch.Generator().manual_seed(0)
    lams = np.array([MixUp(alpha).draw(2, g)[0] for _ in range(2000)])
    assert stats.kstest(lams, "beta", args=(alpha, alpha)).pvalue > 1e-3
    assert abs(lams.mean() - 0.5) < 0.03


@settings(deadline=None, max_examples=25)
@given(**batches, cut=st.booleans())
def test_targets_are_distributions_and_pixels_come_from_the_pair(b, h, w, seed, alpha, soft, cut):
    """Soft targets are (B, C) rows summing to 1; each mixed pixel is the lam-mixture
    (MixUp) or exactly the pixel of the sample itself or of its partner x[perm] (CutMix)."""
    x, y = batch(b, h, w, seed, soft)
    g = torch.Generator().manual_seed(seed)
    if cut:
        lam, perm, (x1, y1, x2, y2) = CutMix(alpha, C).draw(b, g, size=(h, w))
        out, t = CutMix(alpha, C).mix(x, y, lam, perm, (x1, y1, x2, y2))
        inside = torch.zeros(h, w, dtype=torch.bool)
        inside[y1:y2, x1:x2] = True
        assert torch.equal(out[..., inside], x[perm][..., inside])
        assert torch.equal(out[..., ~inside], x[..., ~inside])
    else:
        lam, perm = MixUp(alpha, C).draw(b, g)
        out, t = MixUp(alpha, C).mix(x, y, lam, perm)
        torch.testing.assert_close(out, lam * x + (1 - lam) * x[perm])
    assert t.shape == (b, C) and t.dtype == x.dtype and (t >= 0).all()
    torch.testing.assert_close(t.sum(dim=1), torch.ones(b))


@settings(deadline=None, max_examples=25)
@given(**batches)
def test_lambda_one_is_the_identity(b, h, w, seed, alpha, soft):
    """lam = 1 (MixUp) or an empty box (CutMix's lam = 1) returns the batch and its own
    targets, for any pairing."""
    x, y = batch(b, h, w, seed, soft)
    perm = torch.randperm(b, generator=torch.Generator().manual_seed(seed))
    t = y if soft else F.one_hot(y, C).float()
    for out, targets in (
        MixUp(alpha, C).mix(x, y, 1.0, perm),
        CutMix(alpha, C).mix(x, y, 1.0, perm, (0, 0, 0, 0)),
    ):
        assert torch.equal(out, x) and torch.equal(targets, t)


@settings(deadline=None, max_examples=25)
@given(**batches, cut=st.booleans())
def test_the_same_generator_state_gives_the_same_mixture(b, h, w, seed, alpha, soft, cut):
    """Two generators seeded alike give equal outputs; the global generator (None) is
    reproducible through torch.manual_seed; the input is not modified."""
    x, y = batch(b, h, w, seed, soft)
    x0 = x.clone()
    mixing = (CutMix if cut else MixUp)(alpha, C)
    first = mixing(x, y, torch.Generator().manual_seed(seed))
    second = mixing(x, y, torch.Generator().manual_seed(seed))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        third = mixing(x, y)
    for a, c in zip(first, second, strict=True):
        assert torch.equal(a, c)
    assert torch.equal(first[0], third[0]) and torch.equal(x, x0)


def test_call_uses_the_drawn_pairing():
    """__call__ = mix(draw(...)): the random permutation of the draw, not torchvision's roll."""
    x, y = batch(8, 4, 4, 0)
    mixup = MixUp(1.0, C)
    lam, perm = mixup.draw(8, torch.Generator().manual_seed(5))
    out = mixup(x, y, torch.Generator().manual_seed(5))
    expected = mixup.mix(x, y, lam, perm)
    assert torch.equal(out[0], expected[0]) and torch.equal(out[1], expected[1])
    assert not torch.equal(perm, roll(8))


BAD = [
    (lambda: MixUp(alpha=0.0), "alpha"),
    (lambda: CutMix(alpha=-1.0), "alpha"),
    (lambda: MixUp(num_classes=0), "num_classes"),
    (lambda: MixUp()(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1])), "float"),
    (lambda: MixUp()(torch.zeros(3, 4, 4), torch.tensor([0, 1])), "float tensor"),
    (lambda: MixUp()(torch.zeros(2, 3, 4, 4), torch.tensor([0, 1, 2])), r"\(2,\) class"),
    (lambda: MixUp()(torch.zeros(2, 3, 4, 4), torch.zeros(2, 5)), r"\(2, 9\) soft"),
    (lambda: MixUp()(torch.zeros(2, 3, 4, 4), torch.zeros(2)), "integer class"),
    (lambda: CutMix()(torch.zeros(2, 3, 4, 4), torch.tensor([0, 9])), r"outside \[0, 9\)"),
    (lambda: MixUp()(torch.zeros(2, 3, 4, 4), torch.tensor([0, 1]), 5), "CPU torch.Generator"),
    (lambda: MixUp().draw(0), "n="),
    (lambda: CutMix().draw(2, size=(0, 4)), "size"),
    (lambda: MixUp().mix(torch.zeros(2, 3, 4, 4), torch.tensor([0, 1]), 1.5, roll(2)), "lam"),
]


@pytest.mark.parametrize(("call", "match"), BAD)
def test_bad_inputs_raise(call, match):
    """A non-positive alpha, non-float or non-batch images, labels of the wrong shape,
    dtype or range, a generator that is not a CPU torch.Generator and lam outside [0, 1]
    each raise PathMNISTError naming the problem."""
    with pytest.raises(PathMNISTError, match=match):
        call()


@pytest.mark.parametrize("cls", [MixUp, CutMix])
def test_pairing_reaches_the_device_without_a_blocking_copy(cls, monkeypatch):
    """The pairing is drawn on the CPU; on another device (here "meta", a device with no
    data, standing in for a GPU without needing one) it arrives through a non_blocking
    copy, never a blocking `.to()` that would wait for the device's queue every batch.
    Every host-to-device `.to` during the mix is recorded."""
    copies, to = [], torch.Tensor.to

    def spy(self, *args, **kwargs):
        out = to(self, *args, **kwargs)
        if self.device.type == "cpu" and out.device.type != "cpu":
            copies.append(kwargs.get("non_blocking", False))
        return out

    monkeypatch.setattr(torch.Tensor, "to", spy)
    x = torch.empty(8, 3, 16, 16, device="meta")
    y = torch.zeros(8, dtype=torch.int64, device="meta")
    mixed, target = cls(1.0, 9)(x, y, torch.Generator().manual_seed(0))
    assert mixed.device.type == target.device.type == "meta"
    assert copies and all(copies), copies  # At least the pairing; each one non_blocking.
