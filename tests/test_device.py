"""pathmnist.device: "auto" picks CUDA only when torch sees a GPU, "cuda" without one is a
named refusal, bf16 is chosen only with native hardware support (CPU flags read from
/proc/cpuinfo), an explicit emulated bf16 warns, and configure_backends sets exactly the
switches it documents. Tests marked `cuda` run only where torch sees a GPU."""

import os

import pytest
import torch

from pathmnist import device as D
from pathmnist.errors import PathMNISTError


@pytest.fixture
def no_gpu(monkeypatch):
    """Make torch see no CUDA GPU, whatever the machine has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def restore_backends(monkeypatch):
    """Put the global switches configure_backends sets back as they were, and start
    without CUBLAS_WORKSPACE_CONFIG (monkeypatch restores the variable afterwards)."""
    saved = (
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.allow_tf32,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    monkeypatch.delenv(D.CUBLAS_WORKSPACE, raising=False)
    yield
    cudnn = torch.backends.cudnn
    cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32 = saved[:3]
    torch.use_deterministic_algorithms(saved[3], warn_only=saved[4])


# resolve_device


def test_cpu_is_always_the_cpu():
    """The name "cpu" gives the CPU device on any machine."""
    assert D.resolve_device("cpu") == torch.device("cpu")


def test_auto_without_a_gpu_is_the_cpu(no_gpu):
    """The name "auto" (the default) falls back to the CPU when torch sees no GPU."""
    assert D.resolve_device("auto") == torch.device("cpu")
    assert D.resolve_device() == torch.device("cpu")


def test_cuda_without_a_gpu_is_refused_with_the_fix(no_gpu):
    """Asking for cuda where torch sees no GPU is one sentence suggesting --device cpu."""
    with pytest.raises(PathMNISTError) as info:
        D.resolve_device("cuda")
    message = str(info.value)
    assert "no CUDA GPU" in message and "--device cpu" in message and "\n" not in message


def test_auto_with_a_gpu_is_cuda(monkeypatch):
    """The name "auto" picks CUDA whenever torch sees a GPU (no GPU needed to check the choice)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert D.resolve_device("auto") == torch.device("cuda")
    assert D.resolve_device("cuda") == torch.device("cuda")


@pytest.mark.parametrize("name", ["tpu", "CPU", "cuda:0", "", None, True])
def test_unknown_device_names_are_refused(name):
    """A name outside DEVICES (case matters; no index) is refused, listing the choices."""
    with pytest.raises(PathMNISTError, match=r"device=.*choose one of auto, cpu, cuda"):
        D.resolve_device(name)


# resolve_precision


@pytest.mark.parametrize("native", [False, True])
def test_auto_precision_follows_the_cpu(monkeypatch, native):
    """On the CPU, auto is bf16 exactly when the CPU has native bf16; fp32 stays fp32."""
    monkeypatch.setattr(D, "cpu_supports_bf16", lambda: native)
    assert D.resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    assert D.resolve_precision("fp32", "cpu") == "fp32"
    assert D.resolve_precision("fp32", torch.device("cpu")) == "fp32"


def test_auto_precision_on_this_machine():
    """On this machine's CPU auto gives bf16 exactly when cpu_supports_bf16 says so."""
    expected = "bf16" if D.cpu_supports_bf16() else "fp32"
    assert D.resolve_precision("auto", "cpu") == expected


@pytest.mark.parametrize("native", [False, True])
def test_auto_precision_follows_the_gpu(monkeypatch, native):
    """On CUDA, auto asks torch for native (not emulated) bf16: Ampere or newer."""
    asked = []

    def is_bf16_supported(including_emulation=True):
        asked.append(including_emulation)
        return native

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert D.resolve_precision("auto", "cuda") == ("bf16" if native else "fp32")
    assert asked == [False]


def test_explicit_bf16_without_native_support_warns_and_is_kept(monkeypatch):
    """bf16 on a CPU without it is kept (autocast emulates it) with a UserWarning."""
    monkeypatch.setattr(D, "cpu_supports_bf16", lambda: False)
    with pytest.warns(UserWarning, match="emulates"):
        assert D.resolve_precision("bf16", "cpu") == "bf16"


def test_explicit_bf16_with_native_support_does_not_warn(monkeypatch, recwarn):
    """Native bf16 asked for explicitly is simply used."""
    monkeypatch.setattr(D, "cpu_supports_bf16", lambda: True)
    assert D.resolve_precision("bf16", "cpu") == "bf16"
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


@pytest.mark.parametrize("name", ["fp16", "float32", "BF16", None])
def test_unknown_precisions_are_refused(name):
    """A precision outside PRECISIONS is refused, listing the choices."""
    with pytest.raises(PathMNISTError, match=r"precision=.*choose one of auto, fp32, bf16"):
        D.resolve_precision(name, "cpu")


# cpu_supports_bf16


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("flags\t\t: fpu avx2 fma", False),
        ("flags\t\t: fpu avx512f avx512_bf16", True),
        ("flags\t\t: fpu amx_bf16 amx_tile", True),
        ("Features\t: fp asimd bf16", True),  # Arm's spelling.
        ("Features\t: fp asimd", False),
        ("model name\t: avx512_bf16 lookalike", False),  # Only flag lines count.
    ],
)
def test_cpu_bf16_detection_reads_the_flag_lines(monkeypatch, tmp_path, line, expected):
    """cpu_supports_bf16 finds avx512_bf16, amx_bf16 or Arm's bf16 among the CPU flags."""
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    fake = tmp_path / "cpuinfo"
    fake.write_text(f"processor\t: 0\n{line}\n")
    monkeypatch.setattr(D, "CPUINFO", str(fake))
    assert D.cpu_supports_bf16() is expected


def test_cpu_bf16_detection_without_cpuinfo(monkeypatch, tmp_path):
    """Without /proc/cpuinfo (not Linux) native bf16 is assumed absent, so auto is fp32;
    a torch capability naming AMX is enough on its own."""
    monkeypatch.setattr(D, "CPUINFO", str(tmp_path / "missing"))
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert D.cpu_supports_bf16() is False
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AMX")
    assert D.cpu_supports_bf16() is True


# configure_backends and fused_available


@pytest.mark.parametrize("deterministic", [False, True])
def test_configure_backends_on_cuda_sets_cudnn(restore_backends, deterministic):
    """On CUDA: benchmark is on unless deterministic, which also makes torch use
    deterministic algorithms, raising (not warning) where an op has none, and sets
    CUBLAS_WORKSPACE_CONFIG=:4096:8 for cuBLAS; TF32 convolutions are on, explicitly."""
    torch.backends.cudnn.allow_tf32 = False
    D.configure_backends(torch.device("cuda"), deterministic)
    assert torch.backends.cudnn.benchmark is (not deterministic)
    assert torch.backends.cudnn.deterministic is deterministic
    assert torch.backends.cudnn.allow_tf32 is True
    assert torch.are_deterministic_algorithms_enabled() is deterministic
    assert not torch.is_deterministic_algorithms_warn_only_enabled()
    assert os.environ.get("CUBLAS_WORKSPACE_CONFIG") == (":4096:8" if deterministic else None)


def test_deterministic_keeps_a_valid_cublas_setting_and_replaces_a_bad_one(
    restore_backends, monkeypatch
):
    """A user's own valid CUBLAS_WORKSPACE_CONFIG (:16:8) stays; an invalid one becomes
    :4096:8. On the CPU too: the variable matters to any CUDA work later in the process."""
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    D.configure_backends(torch.device("cpu"), True)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":0:0")
    D.configure_backends(torch.device("cpu"), True)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.is_deterministic_algorithms_warn_only_enabled()


def test_configure_backends_on_cpu_leaves_cudnn_alone(restore_backends):
    """On the CPU cuDNN's switches are not touched."""
    torch.backends.cudnn.benchmark = False
    D.configure_backends(torch.device("cpu"), True)
    assert torch.backends.cudnn.benchmark is False and torch.are_deterministic_algorithms_enabled()
    D.configure_backends(torch.device("cpu"), False)
    assert not torch.are_deterministic_algorithms_enabled()


def test_memory_format_follows_the_precision():
    """channels_last for bf16 (its convolution kernels' layout), NCHW for fp32."""
    assert D.memory_format("bf16") == torch.channels_last
    assert D.memory_format("fp32") == torch.contiguous_format


def test_decisions_reach_a_gpu_from_pinned_memory_without_blocking(monkeypatch):
    """For a CUDA device, decisions_to pins the small CPU tensor and copies it with
    non_blocking=True (a copy from pageable memory would wait for the GPU); on the CPU it
    does not pin, and `.to` is a no-op. Spies on `pin_memory` and `to`: no GPU needed."""
    calls = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: calls.append("pin") or self)
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: calls.append((a, k)) or self)
    D.decisions_to(torch.arange(4), "cuda")
    assert calls == ["pin", (("cuda",), {"non_blocking": True})]
    calls.clear()
    D.decisions_to(torch.arange(4), "cpu")
    assert calls == [(("cpu",), {"non_blocking": True})]  # A no-op on the CPU.


def test_fused_optimizers_on_cuda_and_the_cpu():
    """The fused Adam/SGD kernels are asked for on CUDA and on the CPU (torch >= 2.4), and
    torch builds them there: a fused step on the CPU equals the per-tensor step."""
    assert D.fused_available(torch.device("cuda")) and D.fused_available(torch.device("cpu"))
    assert not D.fused_available(torch.device("meta"))
    steps = []
    for fused in (None, True):
        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.randn(5, 3))
        opt = torch.optim.Adam([w], lr=0.1, weight_decay=1e-4, fused=fused)
        for _ in range(3):
            w.grad = torch.ones_like(w)
            opt.step()
        steps.append(w.detach().clone())
    torch.testing.assert_close(steps[1], steps[0], rtol=1e-6, atol=1e-7)


# On a real GPU.


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_auto_is_cuda_with_its_native_precision():
    """With a GPU, auto is cuda and auto precision is bf16 exactly when the GPU has it
    natively; a bf16 forward under autocast there gives bf16 activations."""
    device = D.resolve_device("auto")
    assert device.type == "cuda"
    native = torch.cuda.is_bf16_supported(including_emulation=False)
    assert D.resolve_precision("auto", device) == ("bf16" if native else "fp32")
    x = torch.ones(4, 4, device=device)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        assert (x @ x).dtype == torch.bfloat16


def test_per_device_copies_once_and_pickles_without_copies():
    """PerDevice makes one copy per (device, dtype) and hands back the same tensors after;
    a cast rounds as torch does; a pickle carries the CPU originals, not the copies."""
    import pickle

    from pathmnist.device import PerDevice

    table = PerDevice(torch.tensor([0.1, 0.2], dtype=torch.float64), torch.tensor([1, 2]))
    a, b = table("cpu", torch.float32)
    again = table(torch.device("cpu"), torch.float32)
    assert again[0] is a and again[1] is b  # The same objects: copied once.
    assert a.dtype == b.dtype == torch.float32
    assert torch.equal(a, torch.tensor([0.1, 0.2], dtype=torch.float64).float())
    (kept,) = PerDevice(torch.tensor([3, 4]))("cpu")
    assert kept.dtype == torch.int64  # No dtype: the original's.
    copy = pickle.loads(pickle.dumps(table))
    assert copy._copies == {} and torch.equal(copy("cpu")[0], table.tensors[0])
