"""Device and numeric precision: GPU when there is one, bf16 where the hardware has it."""

import contextlib
import ctypes

import torch

from core import InputError


def select_device(no_cuda: bool) -> torch.device:
    if torch.cuda.is_available() and not no_cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        return torch.device("cuda")
    return torch.device("cpu")


def cpu_has_fast_bf16() -> bool:
    """True when the CPU multiplies bf16 natively (avx512_bf16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """Turns `auto` into bf16 where it is fast (CUDA with bf16, avx512_bf16 CPUs), else fp32."""
    if precision == "fp16" and device.type != "cuda":
        raise InputError("--precision=fp16: needs a CUDA GPU (use bf16 or fp32 on the CPU)")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


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
