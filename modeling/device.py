"""Device and numeric precision: GPU when there is one, bf16 where the hardware has it."""

import contextlib
import ctypes
import platform
from typing import Optional

import torch

from .errors import InputError


def select_device(no_cuda: bool) -> torch.device:
    if torch.cuda.is_available() and not no_cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        return torch.device("cuda")
    return torch.device("cpu")


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def _cpu_model() -> str:
    """The CPU's model name, or the architecture where /proc/cpuinfo has none."""
    return next((line.split(":", 1)[1].strip() for line in _cpuinfo().splitlines()
                 if line.startswith("model name")), None) or platform.machine()


def cpu_fast_bf16_flag() -> Optional[str]:
    """The CPU flag that makes bf16 fast here (avx512_bf16 or AMX), or None."""
    flags = _cpuinfo()
    return next((flag for flag in ("avx512_bf16", "amx_bf16") if flag in flags), None)


def cpu_has_fast_bf16() -> bool:
    """True when the CPU multiplies bf16 natively (avx512_bf16 or AMX)."""
    return cpu_fast_bf16_flag() is not None


def machine_class() -> str:
    """The machine a benchmark ran on, and its class for this project's numbers:
    `AMD EPYC 9R14, 2 threads, avx512_bf16 (class: avx512_bf16)`; the class is AMX,
    avx512_bf16, or fp32 only (bf16 emulated), or the GPU's name."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (class: CUDA GPU)"
    info = _cpuinfo()
    flags = [flag for flag in ("avx512_bf16", "amx_bf16") if f" {flag}" in info]
    kind = ("AMX" if "amx_bf16" in flags else "avx512_bf16" if flags
            else "fp32 only, bf16 emulated")
    return (f"{_cpu_model()}, {torch.get_num_threads()} threads, "
            f"{' '.join(flags) or 'no bf16 flags'} (class: {kind})")


FAST_BF16_CAPABILITY = (8, 0)  # Ampere: bf16 tensor cores


def choose_precision(precision: str, device: torch.device) -> tuple[str, str]:
    """(precision, why): `auto` is bf16 where it is fast (CUDA GPUs of compute capability
    8.0 on, avx512_bf16 or AMX CPUs), fp16 with the grad scaler on older GPUs (V100, T4:
    `torch.cuda.is_bf16_supported()` may say True there, emulated and slow), else fp32."""
    if precision == "fp16" and device.type != "cuda":
        raise InputError("--precision=fp16: needs a CUDA GPU (use bf16 or fp32 on the CPU)")
    if precision != "auto":
        return precision, f"--precision={precision}"
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if (major, minor) >= FAST_BF16_CAPABILITY and torch.cuda.is_bf16_supported():
            return "bf16", f"auto: the GPU (compute capability {major}.{minor}) has bf16"
        return "fp16", (f"auto: the GPU (compute capability {major}.{minor}) has no fast "
                        "bf16: fp16 with the grad scaler")
    flag = cpu_fast_bf16_flag()
    if flag:
        return "bf16", f"auto: the CPU has {flag}"
    return "fp32", "auto: the CPU has neither avx512_bf16 nor amx_bf16"


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision `choose_precision` picks."""
    return choose_precision(precision, device)[0]


def describe_device(device: torch.device) -> str:
    """The device and what it is: `cuda:0 (NVIDIA H200)`, `cpu (AMD EPYC 9R14, 2 threads)`."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({_cpu_model()}, {torch.get_num_threads()} threads)"


def autocast(device: torch.device, precision: str):
    """The autocast context for a precision; fp32 runs without one."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def keep_freed_memory() -> None:
    """Has glibc's malloc keep large freed blocks for reuse instead of unmapping them.

    A training step frees and reallocates the same large buffers; the word-embedding
    gradient alone is 47 MB for BERT's vocabulary. Above malloc's mmap threshold each
    of them is a fresh mapping whose pages fault in and are zeroed again, about 10%
    of a MiniLM step on 2 cores. A no-op where the C library is not glibc.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of freed heap
    mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: blocks under 1 GiB come from the heap
