"""What a training run leaves on disk and how it comes back: checkpoints (last.pt, best.pt)
written atomically with a checksum, loaded safely, and the checks a resume must pass.

A checkpoint is a plain dict of tensors, numbers, strings, lists, tuples and dicts, so it
loads with `torch.load(weights_only=True)`, which unpickles only those types (since torch
2.6 the default): a checkpoint from elsewhere cannot run code on load. That rules out numpy
arrays and dataclasses, so the config travels as a dict and numpy's RNG state as lists.
Files are written atomically (`pathmnist.io.atomic_path`): a crash mid-save leaves the
previous checkpoint intact. Each file carries a SHA-256 of its contents (every tensor's
bytes and every other value's repr), checked on load: torch's zip reader does not verify
its CRCs, so without it one flipped bit in a weight would be resumed silently.

Why save RNG states at all? The batch order and augmentation of epoch e come from the
loader's own generator seeded with (seed, epoch), so they need no saved state; but anything
else that draws from the global generators (dropout, a user's transform) would diverge
after a resume without them. Saving torch's CPU and CUDA states, numpy's and Python's keeps
a resumed run bit-identical to an uninterrupted one on the same machine.

last.pt holds what a resume needs (model, optimizer, scheduler, early-stopping counters,
RNG states, the rows so far); the best epoch's weights live only in best.pt, which a resume
reads back, so each epoch writes the weights once more at most, not twice.

Tested in tests/test_checkpoints.py and tests/test_training.py (round trip through
weights_only, corrupt, truncated, foreign and bit-flipped files, resume refusals, resume
bit-identical to an uninterrupted run).
"""

import hashlib
import random
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from pathmnist.config import RESUME_MAY_CHANGE, TrainConfig
from pathmnist.errors import PathMNISTError
from pathmnist.history import History
from pathmnist.io import atomic_path
from pathmnist.resnet import build
from pathmnist.transforms import build_transforms

FORMAT = "pathmnist-checkpoint-2"  # Bumped when the layout of the dict changes.
# What a resume reads from last.pt; a file without one of these is not a last.pt.
RESUME_KEYS = ("model", "optimizer", "scheduler", "early_stopping", "rng", "rows", "epoch")
# What last.pt holds beyond a best.pt (run info, model, epoch).
LAST_ONLY = ("optimizer", "scheduler", "early_stopping", "rng", "rows", "stopped_early", "sha256")


def _digest(obj, h) -> None:
    """Feed `obj` into the hash `h` in a fixed order: tensors by dtype, shape and bytes."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, dict):
        h.update(b"D%d" % len(obj))
        for k in sorted(obj, key=repr):
            h.update(repr(k).encode())
            _digest(obj[k], h)
    elif isinstance(obj, list | tuple):
        h.update(b"L%d" % len(obj))
        for v in obj:
            _digest(v, h)
    else:
        h.update(f"{type(obj).__name__}:{obj!r}".encode())


def checksum(payload: dict) -> str:
    """SHA-256 (hex) of a checkpoint's contents, the "sha256" entry itself left out."""
    h = hashlib.sha256()
    _digest({k: v for k, v in payload.items() if k != "sha256"}, h)
    return h.hexdigest()


def save(payload: dict, path) -> Path:
    """Write `payload` (plus the FORMAT tag and its checksum) with torch.save, atomically."""
    path = Path(path)
    payload = {"format": FORMAT, **payload}
    payload["sha256"] = checksum(payload)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load(path, fix: str = "train again without --resume") -> dict:
    """Read a checkpoint onto the CPU with weights_only=True; PathMNISTError if missing,
    unreadable, not written by `save`, or changed since (the message ends with `fix`)."""
    path = Path(path)
    if not path.is_file():
        raise PathMNISTError(f"there is no checkpoint at {path}; {fix}.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    # A file that is not a checkpoint can fail deep inside torch's readers in many ways
    # (RuntimeError, UnpicklingError, BadZipFile, struct.error on a few junk bytes, ...):
    # every one of them means "not a readable checkpoint".
    except Exception as e:
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise PathMNISTError(
            f"{path} is not a readable checkpoint ({reason}); it may be truncated, corrupt or "
            f"from another program: {fix}."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise PathMNISTError(
            f"{path} is a torch file but not a pathmnist checkpoint (format {found!r}, "
            f"expected {FORMAT!r}); {fix}."
        )
    if payload.get("sha256") != checksum(payload):
        raise PathMNISTError(
            f"{path} fails its checksum: the file changed after it was written (a disk error "
            f"or an edit); {fix}."
        )
    return payload


def rng_state() -> dict:
    """Every global generator's state as weights_only-loadable values."""
    # numpy's global generator: {"state": {"key": uint32 (624,), "pos": int}, ...}
    np_state = np.random.get_state(legacy=False)  # noqa: NPY002 - it is the one we save.
    return {
        "torch": torch.get_rng_state(),  # uint8 tensor
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": np_state["state"]["key"].tolist(),  # A plain list: no numpy in the file.
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": random.getstate(),  # (version, tuple of 625 ints, gauss or None)
    }


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state()` captured (CUDA states only if the device count matches)."""
    torch.set_rng_state(state["torch"])
    cuda = state["cuda"]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002 - the global generator is what we restore.
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": np.asarray(n["key"], dtype=np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def data_identity(imageset) -> dict:
    """What identifies a split's data cheaply: its size, image shape, a hash of all its
    labels and of every 97th image (a different file with the same split sizes almost
    surely differs in one of them)."""
    h = hashlib.sha256(imageset.labels.astype(np.int64).tobytes())
    h.update(np.ascontiguousarray(imageset.images[::97]).tobytes())
    return {"n": len(imageset), "shape": list(imageset.images.shape[1:]), "sha256": h.hexdigest()}


def open_run(out_dir, config: dict, data: dict) -> dict:
    """Return last.pt of `out_dir` after checking that resuming it continues the same
    experiment: the same config (but RESUME_MAY_CHANGE) and the same data."""
    out_dir = Path(out_dir)
    fix = "drop --resume and pass --overwrite to start anew"
    saved = load(out_dir / "last.pt", fix)
    missing = [k for k in (*RESUME_KEYS, "config", "data") if k not in saved]
    if missing:
        raise PathMNISTError(
            f"{out_dir / 'last.pt'} lacks {', '.join(missing)}, so it is not a last.pt "
            f"(a best.pt copied over it?); {fix}."
        )
    old_config = TrainConfig.from_dict(saved["config"]).to_dict()
    for key, value in config.items():
        if key not in RESUME_MAY_CHANGE and old_config.get(key) != value:
            raise PathMNISTError(
                f"cannot resume {out_dir}: its run used {key}={old_config.get(key)!r} but this "
                f"one asks for {key}={value!r}; use the same {key}, or train in a new folder."
            )
    if saved["data"] != data:
        raise PathMNISTError(
            f"cannot resume {out_dir}: it was trained on other data (another file, subset or "
            "seed); resume with the same data, or train in a new folder."
        )
    done = len(saved["rows"])
    if config["epochs"] < done:
        raise PathMNISTError(
            f"cannot resume {out_dir} with epochs={config['epochs']}: it has already trained "
            f"{done} epochs; pass --epochs {done} or more."
        )
    return saved


def save_epoch(out_dir, info: dict, model, optimizer, scheduler, stopper, rows, stopped) -> None:
    """After an epoch: last.pt, then best.pt if it was the best so far, then history.csv.

    last.pt goes first: it is what a resume trusts. A kill between the two writes leaves
    best.pt one best epoch behind, which `restore` repairs from last.pt's own weights; the
    other order would leave best.pt ahead of last.pt, and the weights of last.pt's best
    epoch lost."""
    out_dir = Path(out_dir)
    epoch = rows[-1]["epoch"]
    early = stopper.state_dict()
    early["best_weights"] = None  # They are best.pt's model: `restore` reads them from there.
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),  # Adam's moments (or SGD's momentum buffers).
        "scheduler": scheduler.state_dict(),
        "early_stopping": early,
        "rng": rng_state(),
        "rows": rows,
        "stopped_early": stopped,
        "epoch": epoch,
    }
    save({**info, **state}, out_dir / "last.pt")
    if stopper.best_epoch == epoch:  # Model, config and normalisation: load_checkpoint's needs.
        save({**info, "model": model.state_dict(), "epoch": epoch}, out_dir / "best.pt")
    History(rows).to_csv(out_dir / "history.csv")


def _best_weights(out_dir: Path, saved: dict, best_epoch: int) -> dict:
    """The best epoch's weights for a resume, from best.pt; or from last.pt when its own
    epoch is the best one and a kill between the two writes left best.pt behind (or
    absent), in which case best.pt is written again."""
    path, fix = out_dir / "best.pt", "train in a new folder (best.pt is gone)"
    own = best_epoch == saved["epoch"]
    best = load(path, fix) if path.exists() or not own else {"epoch": 0}
    if own and isinstance(best.get("epoch"), int) and best["epoch"] < best_epoch:
        info = {k: v for k, v in saved.items() if k not in LAST_ONLY}
        save({**info, "model": saved["model"], "epoch": best_epoch}, path)
        return saved["model"]
    if best.get("epoch") != best_epoch:
        raise PathMNISTError(
            f"{path} is from epoch {best.get('epoch')}, not the best epoch {best_epoch} that "
            "last.pt records; train in a new folder."
        )
    return best["model"]


def restore(out_dir, saved: dict, model, optimizer, scheduler, stopper):
    """Load last.pt's states (and best.pt's weights) into fresh objects; return its
    (rows, stopped_early)."""
    try:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        stopper.load_state_dict(saved["early_stopping"])
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise PathMNISTError(
            f"{Path(out_dir) / 'last.pt'} does not fit this model and optimizer "
            f"({type(e).__name__}); train in a new folder."
        ) from None
    if stopper.best_epoch:
        best = _best_weights(Path(out_dir), saved, stopper.best_epoch)
        stopper.best_weights = {k: v.clone() for k, v in best.items()}
    set_rng_state(saved["rng"])
    return list(saved["rows"]), bool(saved["stopped_early"])


class Checkpoint(NamedTuple):
    """What `load_checkpoint` returns: a ready model and how to feed it."""

    model: nn.Module  # On the CPU, in eval mode.
    config: TrainConfig
    eval_transform: object  # uint8 (B, H, W, 3) -> normalised float (B, 3, H, W)
    class_names: tuple[str, ...]


def load_checkpoint(path) -> Checkpoint:
    """Rebuild model (CPU, eval mode), config, eval transform and class names from a
    best.pt (or last.pt) that `fit` wrote; PathMNISTError if missing or unreadable."""
    fix = "pass the best.pt (or last.pt) that training.fit wrote"
    payload = load(path, fix)
    try:
        config = TrainConfig.from_dict(payload["config"])
        model = build(config.arch, num_classes=int(payload["num_classes"]), stem=config.stem)
        model.load_state_dict(payload["model"])
        _, eval_tf = build_transforms(
            payload["mean"], payload["std"], size=config.size, stain=payload.get("stain")
        )
        names = tuple(payload["class_names"])
    except (KeyError, RuntimeError, TypeError) as e:
        raise PathMNISTError(
            f"{path} is a checkpoint but lacks what load_checkpoint needs "
            f"({type(e).__name__}: {str(e)[:80]}); {fix}."
        ) from None
    return Checkpoint(model.eval(), config, eval_tf, names)
