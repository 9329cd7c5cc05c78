"""The one builder of every network the course trains: `build(arch, num_classes=..., ...)`.

`config.ARCHS` names the choices a `TrainConfig` accepts; `BUILDERS` maps each name to
its constructor (tests/test_registry.py checks that the two agree). `weights=` starts the
network from trained weights ("imagenet" or a state dict file; `model.pretrained`).
"""

from pathmnist.errors import PathMNISTError
from pathmnist.model import densenet, pretrained, resnet

BUILDERS = {
    "resnet18": resnet.resnet18,
    "resnet34": resnet.resnet34,
    "resnet50": resnet.resnet50,
    "densenet121": densenet.densenet121,
}


def build(arch, weights=None, **kw):
    """Build `BUILDERS[arch](**kw)`, then copy in the backbone of `weights` when given
    (None: random initial weights); an unknown name raises PathMNISTError listing the choices."""
    if arch not in BUILDERS:
        raise PathMNISTError(f"unknown arch {arch!r}; choose one of {', '.join(BUILDERS)}.")
    model = BUILDERS[arch](**kw)
    if weights is not None:
        pretrained.load_weights(model, arch, weights)
    return model
