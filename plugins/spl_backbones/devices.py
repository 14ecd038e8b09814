"""Resolve the ``device`` and ``dtype`` options ("auto", "cuda:1", "float16", ...) to torch objects."""

from __future__ import annotations

from spl_sdk.errors import ConfigError
from spl_sdk.lazy import torch

DTYPES = ("float32", "float16", "bfloat16")  # names of torch dtypes (looked up on use: torch loads lazily)


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; an unavailable device is a ConfigError."""
    if isinstance(device, torch.device):
        return device
    name = (device or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device '{device}' is not a torch device name; "
                          f"use auto, cpu, cuda, cuda:N or mps.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' was asked for but this machine has no usable CUDA GPU; "
                          f"use --device auto or --device cpu.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"device '{device}' does not exist (this machine has "
                          f"{torch.cuda.device_count()} CUDA device(s)); pick an index below that.")
    if dev.type == "mps" and not _mps_available():
        raise ConfigError(f"device '{device}' was asked for but Apple MPS is not available here; "
                          f"use --device auto or --device cpu.")
    return dev


def resolve_dtype(dtype: str | torch.dtype = "auto", device: torch.device | None = None) -> torch.dtype:
    """``auto`` is float16 on CUDA (half the memory, tensor cores) and float32 on CPU and MPS."""
    if isinstance(dtype, torch.dtype):
        return dtype
    name = (dtype or "auto").strip().lower()
    if name == "auto":
        return torch.float16 if device is not None and device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise ConfigError(f"dtype '{dtype}' is not supported; use auto, {', '.join(DTYPES)}.")
    return getattr(torch, name)
