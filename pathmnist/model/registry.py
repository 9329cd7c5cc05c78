"""The one builder of every network the course trains: `build(arch, num_classes=..., ...)`.

`config.ARCHS` names the choices a `TrainConfig` accepts; `BUILDERS` maps each name to
its constructor (tests/test_registry.py checks that the two agree).
"""

from pathmnist.errors import PathMNISTError
from pathmnist.model import resnet

BUILDERS = {"resnet18": resnet.resnet18, "resnet34": resnet.resnet34, "resnet50": resnet.resnet50}


def build(arch, **kw):
    """Build `BUILDERS[arch](**kw)`; an unknown name raises PathMNISTError listing the choices."""
    if arch not in BUILDERS:
        raise PathMNISTError(f"unknown arch {arch!r}; choose one of {', '.join(BUILDERS)}.")
    return BUILDERS[arch](**kw)
