"""Numerical precision of a run: exact fp32, or bf16 matmuls where the hardware has them.

`bf16` runs the network under `torch.autocast`: linear layers compute in bfloat16 (AMX or
AVX512-BF16 on recent x86 CPUs, tensor cores on GPUs) while embeddings, the loss, the
optimiser and the diffusion arithmetic stay fp32. It is opt-in; `fp32` is a no-op context,
so the default path computes exactly what it did before precision was a setting.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager

import torch
from torch import Tensor, nn

PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # x86 instruction sets with bf16 matrix arithmetic


def cpu_has_native_bf16(cpuinfo: str) -> bool:
    """Whether the x86 CPU that `cpuinfo` (the text of /proc/cpuinfo) describes lists AVX512-BF16
    or AMX-BF16 among its `flags`."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return bool(BF16_CPU_FLAGS & set(value.split()))
    return False


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether `device` computes bf16 matmuls in hardware: AVX512-BF16 or AMX on an x86 CPU
    (read from /proc/cpuinfo, so False where that file is missing), Ampere or later on CUDA."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    try:
        with open("/proc/cpuinfo") as f:
            return cpu_has_native_bf16(f.read())
    except OSError:
        return False


def slow_precision_warning(precision: str, device: torch.device | str = "cpu") -> str | None:
    """A one-line warning when `precision` would run emulated on `device`, else None.

    Without native bf16 the matmuls are emulated (converted to fp32 and back): a bf16 training
    step took 7x as long as an fp32 one on an AVX2-only AMD EPYC."""
    if precision != "bf16" or native_bf16(device):
        return None
    device = torch.device(device)
    what = "this CPU has no AVX512-BF16 or AMX" if device.type == "cpu" else f"{device} has no native bf16"
    return f"{what}, so bf16 is emulated and several times slower than fp32 - use --precision fp32 here"


def autocast(precision: str, device: torch.device | str) -> AbstractContextManager:
    """The context the network's forward pass runs in for `precision`."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    raise ValueError(f"unknown precision '{precision}': use one of {', '.join(PRECISIONS)}")


class Autocast(nn.Module):
    """Wraps a network so every call runs under `precision` and returns fp32 outputs.

    Sampling and evaluation take a plain callable network; wrapping it keeps them unaware of
    precision (the wrapper holds no weights of its own, so nothing is copied).
    """

    def __init__(self, model: nn.Module, precision: str):
        super().__init__()
        self.model, self.precision = model, precision

    def forward(self, *args, **kwargs) -> Tensor:
        device = next(self.model.parameters()).device
        with autocast(self.precision, device):
            return self.model(*args, **kwargs).float()


def with_precision(model: nn.Module, precision: str) -> nn.Module:
    """`model` itself for fp32 (bit-identical), else an `Autocast` wrapper around it."""
    return model if precision == "fp32" else Autocast(model, precision)
