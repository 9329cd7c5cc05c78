"""Bounded hypothesis strategies shared by the tests: tiny shapes, explicit float
bounds, so every property runs in milliseconds."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# Batch sizes and image sizes small enough for torch to run hundreds of examples fast.
batch_sizes = st.integers(min_value=1, max_value=8)
image_sizes = st.integers(min_value=1, max_value=16)
num_classes = st.integers(min_value=2, max_value=12)


@st.composite
def uint8_nhwc_batches(draw, max_batch=6, max_size=12):
    """uint8 image batches (B, H, W, 3), as BatchLoader yields them."""
    b = draw(st.integers(1, max_batch))
    h = draw(st.integers(1, max_size))
    w = draw(st.integers(1, max_size))
    return draw(hnp.arrays(np.uint8, (b, h, w, 3)))


@st.composite
def label_vectors(draw, min_size=1, max_size=200, max_classes=12):
    """int64 label vectors with values in [0, max_classes)."""
    k = draw(st.integers(1, max_classes))
    n = draw(st.integers(min_size, max_size))
    return np.asarray(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)), np.int64)


# Subset fractions in (0, 1]: the tiny end keeps one image per class, 1 keeps everything.
fractions = st.floats(min_value=0.0, max_value=1.0, exclude_min=True, allow_nan=False)

# BatchLoader shapes (data): split sizes, batch sizes (above and below the split size), seeds.
loader_sizes = st.integers(min_value=1, max_value=60)
loader_batch_sizes = st.integers(min_value=1, max_value=17)
seeds = st.integers(min_value=0, max_value=2**16)
epochs = st.integers(min_value=0, max_value=100)

# ResNet inputs (resnet): MedMNIST's sizes 28 and 64, the imagenet stem's 1x1 edge (32),
# an odd stage (48 -> 2x2 at layer4) and 96; class counts around PathMNIST's 9.
resnet_image_sizes = st.sampled_from((28, 32, 48, 64, 96))
resnet_num_classes = st.integers(min_value=2, max_value=20)
# DenseNet inputs (densenet): its minimum 29 (denseblock4 at 1x1), 32, 48 and MedMNIST's 64.
densenet_image_sizes = st.sampled_from((29, 32, 48, 64))


# Transforms (transforms): float NCHW batches in [0, 1], square batches for rot90, and
# per-channel mean/std in the range train statistics take (std bounded away from 0).
@st.composite
def float_nchw_batches(draw, max_batch=6, max_size=12, square=False):
    """float32 batches (B, 3, H, W) in [0, 1], as ToFloat yields them."""
    b = draw(st.integers(1, max_batch))
    h = draw(st.integers(1, max_size))
    w = h if square else draw(st.integers(1, max_size))
    return draw(hnp.arrays(np.float32, (b, 3, h, w), elements=st.floats(0, 1, width=32)))


@st.composite
def square_uint8_nhwc_batches(draw, max_batch=6, max_size=12):
    """uint8 batches (B, S, S, 3): square, so 90-degree rotations keep the shape."""
    b = draw(st.integers(1, max_batch))
    s = draw(st.integers(1, max_size))
    return draw(hnp.arrays(np.uint8, (b, s, s, 3)))


channel_means = st.lists(st.floats(0.0, 1.0, width=32), min_size=3, max_size=3)
channel_stds = st.lists(st.floats(0.0625, 1.0, width=32), min_size=3, max_size=3)


# StepLR (parts): torch's StepLR accepts any int step_size >= 1 and gamma > 0; the course
# uses (5, 0.1). Learning rates between 1e-5 and 1 cover SGD and Adam settings.
step_sizes = st.integers(min_value=1, max_value=20)
gammas = st.floats(min_value=1e-3, max_value=1.0, allow_nan=False)
learning_rates = st.lists(st.floats(1e-5, 1.0, allow_nan=False), min_size=1, max_size=3)


@st.composite
def improving_series(draw, max_len=30, mode="min"):
    """Strictly improving monitored values (decreasing for "min", increasing for "max"),
    with every step larger than float rounding at the series' magnitude."""
    start = draw(st.floats(-100.0, 100.0, allow_nan=False))
    steps = draw(st.lists(st.floats(1e-3, 10.0), min_size=1, max_size=max_len))
    sign = -1.0 if mode == "min" else 1.0
    return (start + sign * np.cumsum(steps)).tolist()


@st.composite
def auc_inputs(draw, max_n=40, max_classes=6, ties=True):
    """(labels (N,) int64, probabilities (N, C) float64) with every class present, so
    every one-vs-rest AUC is defined. With ties, scores come from small integer weights
    (many equal values); without, from continuous weights."""
    c = draw(st.integers(2, max_classes))
    extra = draw(st.lists(st.integers(0, c - 1), max_size=max_n - c))
    labels = np.asarray(draw(st.permutations(list(range(c)) + extra)), np.int64)
    n = len(labels)
    cell = st.integers(0, 3) if ties else st.floats(0.01, 1.0)
    weights = np.asarray(draw(hnp.arrays(np.float64, (n, c), elements=cell)), np.float64)
    weights[:, 0] += weights.sum(axis=1) == 0  # A row of zeros would have no softmax-like mass.
    return labels, weights / weights.sum(axis=1, keepdims=True)


@st.composite
def binary_auc_inputs(draw, max_n=40, ties=True):
    """(labels (N,) in {0, 1} with both present, scores (N,) float64)."""
    extra = draw(st.lists(st.integers(0, 1), max_size=max_n - 2))
    labels = np.asarray(draw(st.permutations([0, 1, *extra])), np.int64)
    cell = st.integers(-3, 3) if ties else st.floats(-10.0, 10.0, allow_nan=False)
    scores = np.asarray(draw(hnp.arrays(np.float64, len(labels), elements=cell)), np.float64)
    return labels, scores


# Synthetic PathMNIST (tests/test_synthetic.py): split sizes and image sides small enough
# that one generate() call takes milliseconds.
synthetic_split_sizes = st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(1, 12))
synthetic_image_sizes = st.integers(min_value=16, max_value=64)
