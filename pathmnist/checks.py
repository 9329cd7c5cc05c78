"""The small argument checks every module shares, each raising one PathMNISTError.

A check returns the value (as a plain int, float or str) when it is fine and raises
`PathMNISTError` with one sentence naming the argument, the bad value and the fix when it
is not. `bool` is refused wherever a number is asked for: `True` is an int in Python, and
`batch_size=True` would otherwise train with batch 1.

Tested in tests/test_checks.py (hypothesis properties: every accepted value comes back
unchanged, every refused one raises PathMNISTError naming the argument).
"""

import math
import numbers

import torch

from pathmnist.errors import PathMNISTError


def _fail(name, value, fix) -> PathMNISTError:
    return PathMNISTError(f"{name}={value!r} is not allowed; {fix}.")


def whole(value, name: str, low: int = 0, high: float = math.inf) -> int:
    """`value` as an int if it is a whole number (not a bool) in [low, high]."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or not low <= value <= high:
        bound = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
        raise _fail(name, value, f"use a whole number {bound}")
    return int(value)


def real(
    value,
    name: str,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """`value` as a float if it is a finite real number (not a bool) within the bounds;
    `low_open` / `high_open` exclude the bound itself."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
    if not ok:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        raise _fail(name, value, f"use a finite number in {left}{low}, {high}{right}")
    return float(value)


def probability(value, name: str) -> float:
    """`value` as a float in [0, 1]."""
    return real(value, name, 0.0, 1.0)


def choice(value, name: str, allowed) -> str:
    """`value` if it is one of `allowed` (a tuple of strings)."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise _fail(name, value, f"choose one of {', '.join(map(str, allowed))}")
    return value


def flag(value, name: str) -> bool:
    """`value` if it is exactly True or False (not 0, 1 or "yes")."""
    if not isinstance(value, bool):
        raise _fail(name, value, "use True or False")
    return value


def batch_layout(x, name: str) -> tuple[int, int]:
    """The (H, W) dims of an image batch: uint8 means NHWC (B, H, W, 3), as MedMNIST
    stores it; floating means NCHW (B, 3, H, W), as torch's layers take it."""
    if not isinstance(x, torch.Tensor):
        raise PathMNISTError(f"{name} got a {type(x).__name__}; pass a torch.Tensor batch.")
    if x.dtype == torch.uint8 and x.ndim == 4 and x.shape[-1] == 3:
        return 1, 2  # (B, H, W, 3)
    if x.is_floating_point() and x.ndim == 4 and x.shape[1] == 3:
        return 2, 3  # (B, 3, H, W)
    raise PathMNISTError(
        f"{name} got a {x.dtype} tensor of shape {tuple(x.shape)}; pass uint8 (B, H, W, 3) "
        "or float (B, 3, H, W)."
    )


def cpu_generator(generator, name: str):
    """`generator` if it is None or a CPU torch.Generator: random decisions are drawn on
    the CPU, so a seed gives the same augmentation on any device."""
    if generator is not None and (
        not isinstance(generator, torch.Generator) or generator.device.type != "cpu"
    ):
        raise PathMNISTError(
            f"{name} got the generator {generator!r}; pass a CPU torch.Generator or None "
            "(decisions are drawn on the CPU so results do not depend on the device)."
        )
    return generator


def float_batch(x, name):
    """Refuse anything but a float (B, 3, H, W) batch (uint8 needs ToFloat first)."""
    if batch_layout(x, name) != (2, 3):
        raise PathMNISTError(f"{name} got a {x.dtype} batch; apply ToFloat first.")
