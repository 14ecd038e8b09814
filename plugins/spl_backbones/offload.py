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


class PlacedModules:
    """Mixin for backbones: moves their torch modules to the device and dtype, with optional offload.

    The backbone sets ``device``, ``dtype`` and lists its modules in execution
    order in ``modules()``; its methods call ``_using(module)`` before running one.
    """

    device: torch.device
    dtype: torch.dtype
    offload_hooks: list[Any]

    def modules(self) -> list[torch.nn.Module]:
        """The torch modules in execution order."""
        raise NotImplementedError

    def module_dtype(self, module: torch.nn.Module) -> torch.dtype:
        """The dtype ``module`` runs in: the backbone's, unless a family keeps a part in float32."""
        return self.dtype

    def _place(self, cpu_offload: bool) -> None:
        from spl_backbones.quantize import is_quantized

        self.offload_hooks = []
        for module in self.modules():
            if is_quantized(module):  # bitsandbytes placed it already; .to() would fail
                continue
            dtype = self.module_dtype(module)
            if any(p.dtype != dtype for p in module.parameters()):
                # nn.Module.to: diffusers' own .to() warns about an empty list of fp32 modules.
                torch.nn.Module.to(module, dtype=dtype)
        # On the CPU there is nothing to offload to: cpu_offload is a documented no-op there.
        if cpu_offload and self.device.type != "cpu":
            self.offload_hooks = offload_hooks(self.modules(), self.device)
        else:
            for module in self.modules():
                if not is_quantized(module):
                    module.to(self.device)

    def _using(self, module: torch.nn.Module) -> None:
        """With CPU offload, move every other model back to the CPU before ``module`` runs."""
        if self.offload_hooks:
            keep_only(self.offload_hooks, self.modules().index(module))
