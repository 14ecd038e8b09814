"""Quantized loading of a flow model's transformer through diffusers' bitsandbytes integration.

diffusers loads a transformer in 4-bit NF4 or 8-bit with ``quantization_config=
BitsAndBytesConfig(...)``; bitsandbytes runs on CUDA GPUs only, so anywhere else
(and without the package) the request is refused in one sentence before any weights load.
A quantized module is placed by diffusers itself and must not be moved or cast afterwards.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Literal

from spl_sdk.errors import ConfigError
from spl_sdk.lazy import torch

Quantization = Literal["nf4", "int8"]


def quantization_config(kind: Quantization | None, device: torch.device, compute_dtype: torch.dtype,
                        backbone: str) -> Any:
    """diffusers' ``BitsAndBytesConfig`` for ``kind`` on ``device``, None for no quantization."""
    if kind is None:
        return None
    if device.type != "cuda":
        raise ConfigError(f"quantized loading ({backbone}.quantize={kind}) runs on a CUDA GPU only "
                          f"(bitsandbytes), and the device is {device.type}; drop the quantize option "
                          f"or run with --device cuda.")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(f"quantized loading ({backbone}.quantize={kind}) needs the 'bitsandbytes' "
                          f"package; install it with `pip install bitsandbytes` or drop the option.")
    from diffusers import BitsAndBytesConfig

    if kind == "nf4":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                  bnb_4bit_compute_dtype=compute_dtype)
    return BitsAndBytesConfig(load_in_8bit=True)


def is_quantized(module: Any) -> bool:
    """True for a module diffusers or transformers loaded quantized (it stays where it was put)."""
    return bool(getattr(module, "is_quantized", False) or getattr(module, "hf_quantizer", None))
