"""The device and precision a run reports, and why `auto` chose that precision."""

import platform

import pytest
import torch

from modeling import device as device_module
from modeling.device import choose_precision, describe_device, machine_class, resolve_precision
from modeling.errors import InputError

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("cpu_flags, expected", [
    ("fpu avx2 avx512f avx512_bf16", ("bf16", "auto: the CPU has avx512_bf16")),
    ("fpu avx2 amx_bf16 amx_tile", ("bf16", "auto: the CPU has amx_bf16")),
    ("fpu avx2 avx512f", ("fp32", "auto: the CPU has neither avx512_bf16 nor amx_bf16")),
])
def test_auto_on_the_cpu_names_the_flag(monkeypatch, cpu_flags, expected):
    monkeypatch.setattr(device_module, "_cpuinfo", lambda: f"flags\t\t: {cpu_flags}\n")
    assert choose_precision("auto", CPU) == expected
    assert resolve_precision("auto", CPU) == expected[0]


@pytest.mark.parametrize("capability, bf16, expected", [
    ((8, 0), True, ("bf16", "auto: the GPU (compute capability 8.0) has bf16")),
    ((9, 0), True, ("bf16", "auto: the GPU (compute capability 9.0) has bf16")),
    ((7, 0), True, ("fp16", "auto: the GPU (compute capability 7.0) has no fast bf16: fp16 "
                            "with the grad scaler")),  # V100: bf16 "supported", emulated
    ((7, 5), False, ("fp16", "auto: the GPU (compute capability 7.5) has no fast bf16: fp16 "
                             "with the grad scaler"))])
def test_auto_on_a_gpu_picks_bf16_from_compute_capability_8(
        monkeypatch, capability, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert choose_precision("auto", CUDA) == expected


def test_a_given_precision_is_kept_and_fp16_needs_cuda():
    assert choose_precision("fp32", CPU) == ("fp32", "--precision=fp32")
    assert choose_precision("bf16", CPU) == ("bf16", "--precision=bf16")
    with pytest.raises(InputError, match="--precision=fp16: needs a CUDA GPU"):
        choose_precision("fp16", CPU)


def test_describe_cpu_names_model_and_threads(monkeypatch):
    monkeypatch.setattr(device_module, "_cpuinfo",
                        lambda: "processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t: fpu\n")
    assert describe_device(CPU) == f"cpu (Test CPU 9000, {torch.get_num_threads()} threads)"
    monkeypatch.setattr(device_module, "_cpuinfo", lambda: "")  # no /proc/cpuinfo
    assert describe_device(CPU) == f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


@pytest.mark.parametrize("flags, kind", [
    ("fpu avx512f", "no bf16 flags (class: fp32 only, bf16 emulated)"),
    ("fpu avx512_bf16", "avx512_bf16 (class: avx512_bf16)"),
    ("fpu avx512_bf16 amx_bf16 amx_tile", "avx512_bf16 amx_bf16 (class: AMX)")])
def test_machine_class_names_the_cpu_and_its_bf16_class(flags, kind, monkeypatch):
    monkeypatch.setattr(device_module.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "_cpuinfo",
                        lambda: f"model name\t: Test CPU 9000\nflags\t\t: {flags}\n")
    assert machine_class() == f"Test CPU 9000, {torch.get_num_threads()} threads, {kind}"
