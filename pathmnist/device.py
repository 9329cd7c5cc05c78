"""Where and how a run computes: the device, the precision, and the backend switches.

"auto" picks CUDA when torch sees a GPU, else the CPU; bf16 only where the hardware has it
natively (a CUDA GPU with bf16, or a CPU with AVX512-BF16 or AMX), fp32 elsewhere.

Determinism: on the CPU every kernel this course uses is deterministic, so the same seed
gives the same history bit for bit. On a GPU, cuDNN may pick different convolution
algorithms from run to run (`cudnn.benchmark` times several and keeps the fastest) and the
backward of some ops (e.g. the weight gradient of a convolution, index_add) accumulates
with atomics in a varying order; `deterministic=True` asks torch for deterministic
algorithms and turns benchmark off, at some cost in speed.

Tested in tests/test_device.py.
"""

import warnings

import torch

from pathmnist import checks
from pathmnist.config import DEVICES, PRECISIONS
from pathmnist.errors import PathMNISTError

CPUINFO = "/proc/cpuinfo"  # Linux's list of CPU feature flags.


def cpu_supports_bf16() -> bool:
    """True on a CPU with native bf16 arithmetic: AVX512-BF16 or AMX (x86), BF16 (Arm)."""
    if any(k in torch.backends.cpu.get_cpu_capability() for k in ("AMX", "BF16")):
        return True  # torch reports e.g. "AVX2", "AVX512"; newer builds may name AMX.
    try:
        with open(CPUINFO) as f:
            flags = {
                w for line in f if line.startswith(("flags", "Features")) for w in line.split()
            }
    except OSError:  # Not Linux: assume no native bf16, so "auto" stays fp32.
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve_device(name: str = "auto") -> torch.device:
    """ "auto" -> cuda if available, else cpu; "cuda" without a GPU is a PathMNISTError."""
    checks.choice(name, "device", DEVICES)
    if name == "cuda" and not torch.cuda.is_available():
        raise PathMNISTError(
            "device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu or auto."
        )
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def resolve_precision(name: str, device) -> str:
    """ "auto" -> "bf16" where the device has native bf16, else "fp32". An explicit "bf16"
    without native support is kept (autocast emulates it: correct, slow) with a warning."""
    checks.choice(name, "precision", PRECISIONS)
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise PathMNISTError(
            f"unknown device {device!r}; pass a torch.device, 'cpu' or 'cuda'."
        ) from None
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported(including_emulation=False)  # Ampere or newer.
    else:
        native = cpu_supports_bf16()
    if name == "bf16" and not native:
        warnings.warn(
            f"precision bf16 on {device} without native bf16: autocast emulates it, "
            "usually slower than fp32.",
            UserWarning,
            stacklevel=2,
        )
    return ("bf16" if native else "fp32") if name == "auto" else name


def configure_backends(device: torch.device, deterministic: bool) -> None:
    """Set the global backend switches a run wants on `device`.

    cudnn.benchmark: the input shape is the same every batch, so timing the candidate
    convolution algorithms once and keeping the fastest pays for itself within an epoch.
    It is off with `deterministic`, since the fastest algorithm may differ between runs.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
    # warn_only: an op with no deterministic kernel warns instead of failing the run.
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def fused_available(device: torch.device) -> bool:
    """Whether torch's fused Adam/SGD (one kernel for every parameter's update, instead of
    several per parameter) runs on `device`: CUDA, and recent torch on the CPU too."""
    return device.type == "cuda"


def decisions_to(decisions, device):
    """A small CPU tensor of random decisions on the batch's device, without waiting for
    the GPU: a non_blocking copy from pinned host memory is asynchronous."""
    if torch.device(device).type == "cuda":
        decisions = decisions.pin_memory()
    return decisions.to(device, non_blocking=True)
