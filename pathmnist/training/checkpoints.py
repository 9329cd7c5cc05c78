"""The checkpoint file format: written atomically with a checksum, loaded safely.

A checkpoint is a plain dict of tensors, numbers, strings, lists, tuples and dicts, so it
loads with `torch.load(weights_only=True)`, which unpickles only those types (since torch
2.6 the default): a checkpoint from elsewhere cannot run code on load. That rules out numpy
arrays and dataclasses, so the config travels as a dict and numpy's RNG state as lists.
Files are written atomically (`pathmnist.files.atomic_path`): a crash mid-save leaves the
previous checkpoint intact. Each file carries a SHA-256 of its contents (every tensor's
bytes and every other value's repr), checked on load: torch's zip reader does not verify
its CRCs, so without it one flipped bit in a weight would be resumed silently.

Why save RNG states at all? The batch order and augmentation of epoch e come from the
loader's own generator seeded with (seed, epoch), so they need no saved state; but anything
else that draws from the global generators (dropout, a user's transform) would diverge
after a resume without them. Saving torch's CPU and CUDA states, numpy's and Python's keeps
a resumed run bit-identical to an uninterrupted one on the same machine.

Tested in tests/test_checkpoints.py (round trip through weights_only, corrupt, truncated,
foreign and bit-flipped files).
"""

import hashlib
import random
from pathlib import Path

import numpy as np
import torch

from pathmnist.errors import PathMNISTError
from pathmnist.files import atomic_path

FORMAT = "pathmnist-checkpoint-2"  # Bumped when the layout of the dict changes.


def _to_host(obj, copied: list):
    """`obj` with every tensor on the host: GPU tensors start an asynchronous copy (into
    pinned memory) and are listed in `copied`, so one synchronisation waits for them all;
    host tensors are used as they are (no copy)."""
    if isinstance(obj, torch.Tensor):
        if obj.device.type == "cpu":
            return obj.detach()
        copied.append(obj.device)
        return obj.detach().to("cpu", non_blocking=True)
    if isinstance(obj, dict):
        return {k: _to_host(v, copied) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_host(v, copied) for v in obj)
    return obj


def to_host(obj):
    """`obj` (dicts, lists, tuples of tensors and plain values) with every tensor in host
    memory, each GPU tensor copied once, and a single wait for all the copies."""
    copied = []
    out = _to_host(obj, copied)
    for device in set(copied):
        torch.cuda.synchronize(device)  # The copies are asynchronous: wait before reading.
    return out


def _digest(obj, h) -> None:
    """Feed `obj` into the hash `h` in a fixed order: tensors by dtype, shape and bytes."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()  # No copy for the host tensors `save` passes.
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy() if t.numel() else b"")  # No copy.
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
    """Write `payload` (plus the FORMAT tag and its checksum) with torch.save, atomically.
    Each tensor is copied to the host once (`to_host`): the checksum and torch.save both
    read that copy."""
    path = Path(path)
    payload = {"format": FORMAT, **to_host(payload)}
    payload["sha256"] = checksum(payload)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load(path, fix: str = "train again without --resume") -> dict:
    """Read a checkpoint onto the CPU with weights_only=True; PathMNISTError if missing,
    unreadable, not written by `save`, or changed since (the message ends with `fix`)."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise PathMNISTError(f"{path} is a folder or device, not a checkpoint file; {fix}.")
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
