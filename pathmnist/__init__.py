"""pathmnist: ResNet-18 from scratch on PathMNIST, as a test-driven course.

One concept per module (see docs/index.md for the course map):
data, synthetic, transforms, resnet, schedulers, early_stopping, metrics, training,
tuning, plots, errors.
"""

from pathmnist.errors import PathMNISTError

__all__ = ["PathMNISTError"]
__version__ = "0.1.0"
