"""Model CPU offload: keep each model on the CPU until the sampler calls it (for small GPUs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spl_sdk.errors import ConfigError
from spl_sdk.lazy import torch


def offload_hooks(modules: Sequence[torch.nn.Module], device: torch.device) -> list[Any]:
    """Wrap each module with accelerate's ``cpu_offload_with_hook`` (moved to ``device`` when called).

    As diffusers' ``enable_model_cpu_offload``, but instead of a fixed chain the
    backbone calls :func:`keep_only` before using a model, so exactly one model
    occupies the GPU whatever order the sampler calls them in.
    """
    try:
        from accelerate import cpu_offload_with_hook
    except ImportError:
        raise ConfigError("cpu_offload needs the 'accelerate' package; install it with "
                          "`pip install 'spl-sdk[offload]'` or turn cpu_offload off.") from None
    hooks: list[Any] = []
    for module in modules:
        module.to("cpu")
        hooks.append(cpu_offload_with_hook(module, device)[1])
    return hooks


def keep_only(hooks: Sequence[Any], keep: int) -> None:
    """Send every hooked module except ``hooks[keep]`` back to the CPU."""
    for i, hook in enumerate(hooks):
        if i != keep:
            hook.offload()
