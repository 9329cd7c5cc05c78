"""Where and how a run computes: the device, the precision, and the backend switches.

"auto" picks CUDA when torch sees a GPU, else the CPU; bf16 only where the hardware has it
natively (a CUDA GPU with bf16, or a CPU with AVX512-BF16 or AMX), fp32 elsewhere.

Determinism: on the CPU every kernel this course uses is deterministic, so the same seed
gives the same history bit for bit. On a GPU, cuDNN may pick different convolution
algorithms from run to run (`cudnn.benchmark` times several and keeps the fastest) and the
backward of some ops (e.g. the weight gradient of a convolution, index_add) accumulates
with atomics in a varying order; `deterministic=True` makes torch use deterministic
algorithms (an op without one raises), sets CUBLAS_WORKSPACE_CONFIG for cuBLAS and turns
benchmark off, at some cost in speed.

Tested in tests/test_device.py.
"""

import os
import warnings

import torch

from pathmnist import checks
from pathmnist.config import DEVICES, PRECISIONS
from pathmnist.errors import PathMNISTError

CPUINFO = "/proc/cpuinfo"  # Linux's list of CPU feature flags.
# cuBLAS is deterministic only with a fixed workspace: one of these two settings (NVIDIA's
# cuBLAS docs, "Results reproducibility"; torch's reproducibility notes).
CUBLAS_WORKSPACE = "CUBLAS_WORKSPACE_CONFIG"
CUBLAS_DETERMINISTIC = (":4096:8", ":16:8")


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

    cudnn.allow_tf32 is set explicitly (to True, cuDNN's own default): on an Ampere or newer
    GPU, "fp32" convolutions then run on tensor cores in TF32 (10 mantissa bits in the
    products, float32 sums and storage), so an "fp32" speed figure on such a GPU is a TF32
    one. Matrix products (the classifier) keep torch's default, full float32.

    `deterministic`: `torch.use_deterministic_algorithms(True)`, so an op with no
    deterministic kernel raises instead of silently varying, and CUBLAS_WORKSPACE_CONFIG
    :4096:8, which cuBLAS needs for deterministic matrix products (CUDA 10.2 and later). The
    variable is read when cuBLAS starts, so set it in the shell for a process that used
    cuBLAS before this call; a value already set by the user is kept if it is a valid one.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.allow_tf32 = True
    if deterministic and os.environ.get(CUBLAS_WORKSPACE) not in CUBLAS_DETERMINISTIC:
        os.environ[CUBLAS_WORKSPACE] = CUBLAS_DETERMINISTIC[0]
    torch.use_deterministic_algorithms(deterministic)


def memory_format(precision: str) -> torch.memory_format:
    """The model's memory format for `precision`: channels_last (NHWC) for bf16, whose
    convolution kernels want it (oneDNN on the CPU, cuDNN's tensor cores), contiguous
    NCHW for fp32. The input batches are NCHW views of NHWC bytes (channels_last), so the
    loop converts them to this format once per batch, not once per convolution."""
    return torch.channels_last if precision == "bf16" else torch.contiguous_format


def fused_available(device: torch.device) -> bool:
    """Whether torch's fused Adam/SGD (one kernel per parameter for the whole update,
    instead of about eight elementwise passes) runs on `device`: CUDA, and the CPU since
    torch 2.4. On the CPU it is several times faster than torch's default per-tensor loop
    (ResNet-18's Adam step: about 0.03 s against 0.09-0.23 s on one core of the bench in
    benchmarks/RESULTS.md)."""
    return device.type in ("cuda", "cpu")


def decisions_to(decisions, device):
    """A small CPU tensor of random decisions on the batch's device, without waiting for
    the GPU: a non_blocking copy from pinned host memory is asynchronous."""
    if torch.device(device).type == "cuda":
        decisions = decisions.pin_memory()
    return decisions.to(device, non_blocking=True)


class PerDevice:
    """Copies of a few small constant tensors, one per (device, dtype), made on first use.

    Making a constant for every batch would copy it from pageable host memory each time,
    and on CUDA such a copy waits for the GPU; this copies it once per device and dtype.
    Normalisation statistics, stain matrices, class weights and lookup tables all use it.
    It pickles without the copies (they may live on a GPU)."""

    def __init__(self, *tensors):
        self.tensors = tuple(torch.as_tensor(t).cpu() for t in tensors)  # The CPU originals.
        self._copies = {}

    def __call__(self, device, dtype=None) -> tuple:
        """The tensors on `device` (cast to `dtype` when given), made once."""
        key = (torch.device(device), dtype)
        if key not in self._copies:
            self._copies[key] = tuple(
                t.to(device=key[0], dtype=dtype or t.dtype) for t in self.tensors
            )
        return self._copies[key]

    def __getstate__(self):
        return {"tensors": self.tensors, "_copies": {}}
