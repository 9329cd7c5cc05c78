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
