"""Start from trained weights: torchvision's ImageNet weights or a state dict on disk.

Transfer learning (Yosinski et al. 2014, "How transferable are features in deep neural
networks?", arXiv 1411.1792): a network trained on ImageNet's 1.28 million photographs has
edge, texture and shape detectors in its early layers that also fit histology, so training
starts from them instead of from random numbers; only the 1000-class head is useless and
is replaced by a fresh one for the dataset's classes. MedMNIST+ (Doerrich et al. 2024,
arXiv 2404.15786) found ImageNet pretraining the strongest single lever at 64x64.

`load_weights(model, arch, "imagenet")` asks torchvision's weights API for the file
(`IMAGENET_WEIGHTS` names the entries): torch.hub downloads it once into
`torch.hub.get_dir()/checkpoints/` and checks the SHA-256 prefix in its name, and later runs
read it from there without the network. `load_weights(model, arch, FILE)` reads a state dict
from disk (`torch.save(model.state_dict(), FILE)`, torchvision's checkpoint file itself, or
a best.pt of this package). Either way every backbone tensor must be there with its shape;
the head (fc or classifier) is never copied: the model keeps its freshly initialised one.
Old torchvision DenseNet files name layers "norm.1" where the modules now say "norm1";
those keys are renamed as torchvision's own loader does. Networks trained with these
weights must see inputs normalised as in ImageNet training: `IMAGENET_MEAN`, `IMAGENET_STD`.

`freeze_backbone(model, True)` stops gradients to everything but the head, for a warm-up
in which only the new head learns (Howard and Ruder 2018, "gradual unfreezing",
arXiv 1801.06146); BatchNorm's running statistics still adapt to the new images.

Tested in tests/test_pretrained.py: a randomly initialised torchvision model saved to a file
gives the same float64 logits in our network and in torchvision's (the same backbone, the
same head copied); the imagenet path with torch.hub's downloader made to fail (a sentence
naming the cache file), to read a local file instead (a checksum failure), and with the
file already in the cache; wrong architecture, missing keys and wrong shapes each give one
sentence; the mean and std equal torchvision's preset transforms'.
"""

import os
import re
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlparse

import torch
import torchvision

from pathmnist.errors import PathMNISTError

# ImageNet's per-channel mean and std in [0, 1] units, as every torchvision classification
# weight's `transforms()` normalises (tests compare them with torchvision's presets).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's weights entry per network: each one's DEFAULT (for resnet50 the V2 recipe,
# 80.86% ImageNet top-1 against V1's 76.13%).
IMAGENET_WEIGHTS = {
    "resnet18": "ResNet18_Weights.IMAGENET1K_V1",
    "resnet34": "ResNet34_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V2",
    "densenet121": "DenseNet121_Weights.IMAGENET1K_V1",
}
HEADS = ("fc.", "classifier.")  # The classifier's key prefix: ResNet, DenseNet.
# torchvision's pattern for DenseNet keys saved before module names could not hold dots
# (also matching the BatchNorm batch counter, which torchvision's files lack).
_LEGACY_DENSENET = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12]\.(?:weight|bias|running_\w+|num_batches_tracked))$"
)


def _is_head(key):
    return key.startswith(HEADS)


def cache_path(arch) -> Path:
    """Where torch.hub keeps (and looks for) the ImageNet file of `arch`: the hub folder's
    checkpoints/ and the URL's file name, e.g. resnet18-f37072fd.pth."""
    url = torchvision.models.get_weight(IMAGENET_WEIGHTS[arch]).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def imagenet_state_dict(arch) -> dict:
    """torchvision's ImageNet state dict for `arch`, from torch.hub's cache or downloaded
    once (torch.hub checks the downloaded file's SHA-256 against the prefix in its name)."""
    if arch not in IMAGENET_WEIGHTS:
        raise PathMNISTError(
            f"there are no ImageNet weights for {arch!r}; use --arch "
            f"{' or '.join(IMAGENET_WEIGHTS)}, or --weights FILE."
        )
    weights = torchvision.models.get_weight(IMAGENET_WEIGHTS[arch])
    path = cache_path(arch)
    try:
        return weights.get_state_dict(
            progress=False, check_hash=True, map_location="cpu", weights_only=True
        )
    except URLError as e:
        raise PathMNISTError(
            f"the ImageNet weights for {arch} could not be downloaded ({e.reason}); without a "
            f"network, copy torchvision's file {weights.url} to {path} and run again."
        ) from None
    except RuntimeError as e:
        if "invalid hash value" not in str(e):
            raise _unreadable(path, e) from None
        raise PathMNISTError(
            f"the download of {weights.url} failed torchvision's checksum ({e}); run again "
            "to download it anew."
        ) from None
    except Exception as e:  # A truncated or foreign file in the cache: unpickling fails.
        raise _unreadable(path, e) from None


def _unreadable(path, e) -> PathMNISTError:
    return PathMNISTError(
        f"{path} could not be read as a state dict ({type(e).__name__}); delete it and run "
        "again, or put torchvision's file there."
    )


def read_state_dict(path) -> dict:
    """A state dict from a file: a plain one, or the "model" entry of a pathmnist
    checkpoint (best.pt); loaded with weights_only=True, so it cannot run code."""
    path = Path(path)
    if not path.is_file():
        raise PathMNISTError(
            f"there is no weights file at {path}; pass a file saved with "
            "torch.save(model.state_dict(), FILE), or --weights imagenet."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # Any unpickling failure means the same to the user.
        raise PathMNISTError(
            f"{path} is not a PyTorch state dict file ({type(e).__name__}); pass a file "
            "saved with torch.save(model.state_dict(), FILE)."
        ) from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]  # A pathmnist checkpoint (best.pt, last.pt).
    if not isinstance(obj, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise PathMNISTError(
            f"{path} holds a {type(obj).__name__}, not a state dict of named tensors; save "
            "one with torch.save(model.state_dict(), FILE)."
        )
    return obj


def _rename_legacy(state_dict) -> dict:
    """DenseNet's old "denselayerN.norm.1" keys as "denselayerN.norm1" (torchvision's rule)."""
    out = {}
    for key, value in state_dict.items():
        m = _LEGACY_DENSENET.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


def _backbone_keys(keys):
    """The keys that must be in a weights file: no head, no BatchNorm batch counter (old
    files lack it and training does not use it)."""
    return {k for k in keys if not _is_head(k) and not k.endswith("num_batches_tracked")}


def _guess_arch(keys):
    """The name of the network whose backbone has exactly `keys`, or None."""
    from pathmnist.model.registry import BUILDERS  # The registry imports this module.

    for name, builder in BUILDERS.items():
        if _backbone_keys(builder(num_classes=1).state_dict()) == _backbone_keys(keys):
            return name
    return None


def check_state_dict(model, arch, state_dict, source) -> dict:
    """The model's state dict with every backbone tensor taken from `state_dict`; raise
    PathMNISTError with one sentence if a key is foreign or missing, or a shape differs."""
    own = model.state_dict()
    given = {k: v for k, v in _rename_legacy(state_dict).items() if not _is_head(k)}
    needed = _backbone_keys(own)
    foreign = sorted(set(given) - set(own))
    if foreign:
        other = _guess_arch(given)
        fix = (
            f"pass --arch {other} or a {arch} state dict" if other else f"pass a {arch} state dict"
        )
        what = f"{other} weights" if other else f"keys such as {foreign[0]!r}"
        raise PathMNISTError(f"{source} holds {what}, which {arch} does not have; {fix}.")
    missing = sorted(needed - set(given))
    if missing:
        raise PathMNISTError(
            f"{source} lacks {len(missing)} of the {len(needed)} {arch} backbone tensors "
            f"(such as {missing[0]!r}); pass a complete {arch} state dict."
        )
    for k, v in given.items():
        if v.shape != own[k].shape:
            raise PathMNISTError(
                f"{source} gives {k!r} the shape {tuple(v.shape)} but {arch} needs "
                f"{tuple(own[k].shape)}; pass weights of {arch} with the same --stem."
            )
    merged = dict(own)
    merged.update(given)
    return merged


def load_weights(model, arch, weights):
    """Copy the backbone of `weights` ("imagenet" or a file path) into `model` in place,
    keeping the model's own head; return the model."""
    if weights == "imagenet":
        state_dict, source = imagenet_state_dict(arch), f"torchvision's {arch} ImageNet file"
    else:
        state_dict, source = read_state_dict(weights), str(weights)
    merged = check_state_dict(model, arch, state_dict, source)
    with torch.no_grad():  # load_state_dict copies into the existing tensors (any dtype).
        model.load_state_dict(merged, strict=True)
    return model


def freeze_backbone(model, frozen: bool) -> None:
    """Let only the head (`model.fc`) learn when `frozen`, everything when not."""
    head = {id(p) for p in model.fc.parameters()}
    for p in model.parameters():
        p.requires_grad_(not frozen or id(p) in head)
