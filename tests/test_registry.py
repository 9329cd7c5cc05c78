"""model.registry: one builder for every name config.ARCHS accepts."""

import pytest

from pathmnist import config
from pathmnist.errors import PathMNISTError
from pathmnist.model import registry


def test_every_configurable_arch_has_a_builder():
    """config.ARCHS (what a TrainConfig accepts) and registry.BUILDERS name the same networks."""
    assert set(config.ARCHS) == set(registry.BUILDERS)


@pytest.mark.parametrize("arch", config.ARCHS)
def test_build_passes_the_keywords(arch):
    """build(arch, num_classes=K) gives a network whose output has K classes."""
    import torch

    model = registry.build(arch, num_classes=4).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 4)


def test_an_unknown_arch_is_one_sentence():
    with pytest.raises(PathMNISTError, match="unknown arch 'vgg'; choose one of resnet18"):
        registry.build("vgg")
