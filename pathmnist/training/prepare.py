"""Run setup: what `fit` checks and builds before its first epoch.

`check_splits` refuses splits that cannot be trained on; `prepare` starts or resumes the
run folder and gathers the run's info (config, class names, split sizes, the data's
identity, the normalisation statistics and Macenko's stain target, both fitted on the
training split only, or ImageNet's statistics with pretrained weights);
`build_optimizer` is the seed's Adam (or SGD with momentum 0.9) with L2 weight decay.

Tested in tests/test_fit.py through `fit`.
"""

import torch

from pathmnist.augment import randstainna, stain
from pathmnist.augment.transforms import channel_stats
from pathmnist.config import TrainConfig
from pathmnist.data.dataset import ImageSet
from pathmnist.device import fused_available
from pathmnist.errors import PathMNISTError
from pathmnist.model import pretrained
from pathmnist.training import checkpoints, rundir
from pathmnist.training.resume import load_last


def build_optimizer(config: TrainConfig, model) -> torch.optim.Optimizer:
    """Adam(lr, weight_decay) or SGD(lr, momentum, weight_decay), as the seed. On CUDA and
    the CPU the fused kernels update each parameter in one pass instead of several."""
    device = next(model.parameters()).device
    c, fused = config, (True if fused_available(device) else None)
    if c.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=c.lr,
            momentum=c.momentum,
            weight_decay=c.weight_decay,
            fused=fused,
        )
    return torch.optim.Adam(model.parameters(), lr=c.lr, weight_decay=c.weight_decay, fused=fused)


def check_splits(train, val) -> None:
    for name, split, least in (("train", train, 2), ("val", val, 1)):
        if not isinstance(split, ImageSet) or len(split) < least:
            raise PathMNISTError(
                f"fit needs the {name} split as an ImageSet of at least "
                f"{least} image(s); pass data.load_split({name!r}, ...)."
            )
    if train.class_names != val.class_names:
        raise PathMNISTError(
            f"train has classes {train.class_names} but val has "
            f"{val.class_names}; load both splits from the same file."
        )


def prepare(config, train, val, out_dir, resume, overwrite):
    """Check everything, then start or resume the run folder; return (info, saved)."""
    data = {"train": checkpoints.data_identity(train), "val": checkpoints.data_identity(val)}
    rundir.check_start(out_dir, resume, overwrite)
    fresh = resume and rundir.unstarted(out_dir)  # Stopped before epoch 1: start it again.
    saved = load_last(out_dir, config.to_dict(), data) if resume and not fresh else None
    rundir.start(out_dir, resume, overwrite)
    if saved:
        mean, std, stain_target = saved["mean"], saved["std"], saved.get("stain")
        randstain = saved.get("randstain")
    else:
        # Pretrained weights expect inputs normalised as in their ImageNet training.
        pre = (pretrained.IMAGENET_MEAN, pretrained.IMAGENET_STD) if config.weights else None
        mean, std = pre or channel_stats(train)
        stain_target = None  # Macenko's target stain, fitted on the training split.
        if config.stain_normalize:
            stains, max_conc = stain.fit_macenko(train.images)
            stain_target = {"stains": stains.tolist(), "max_conc": max_conc.tolist()}
        # RandStainNA's template distribution, also fitted on the training split.
        randstain = randstainna.fit(train.images) if "randstainna" in config.augment else None
    info = {
        "config": config.to_dict(),
        "num_classes": train.num_classes,
        "sizes": {"train": len(train), "val": len(val)},
        "data": data,
        "class_names": list(train.class_names),
        "mean": list(mean),
        "std": list(std),
        "stain": stain_target,
        "randstain": randstain,
    }
    return info, saved
