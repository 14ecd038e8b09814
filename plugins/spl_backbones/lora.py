"""``lcm-lora-sd15``: Stable Diffusion 1.5 weights with the LCM-LoRA adapter fused into the UNet."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from spl_backbones import loading
from spl_backbones.diffusers_backbone import DiffusersBackbone

LORA_SUBFOLDER = "lcm_lora"  # an optional copy of the adapter inside a local model folder


def load_lora_state_dict(adapter: str, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    """The adapter's state dict in diffusers naming, and kohya-style network alphas if any."""
    from diffusers.loaders import StableDiffusionLoraLoaderMixin

    return StableDiffusionLoraLoaderMixin.lora_state_dict(adapter, **kwargs)


def load_sdxl_lora_state_dict(adapter: str, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    """As :func:`load_lora_state_dict`, with SDXL's key conversions (its block names differ from SD 1.5's)."""
    from diffusers.loaders import StableDiffusionXLLoraLoaderMixin

    return StableDiffusionXLLoraLoaderMixin.lora_state_dict(adapter, **kwargs)


def fuse_lora(unet: Any, state_dict: dict[str, Any], network_alphas: Any,
              adapter_name: str = "lcm", scale: float = 1.0, backbone: str = "lcm-lora-sd15") -> Any:
    """Load a LoRA into the UNet through peft, merge it into the weights and drop the peft layers.

    After this the UNet is a plain UNet again (same modules, same attention
    processors), so attention controllers see no difference.
    """
    from diffusers.loaders import StableDiffusionLoraLoaderMixin

    try:
        import peft  # noqa: F401
    except ImportError:
        from spl_sdk.errors import ConfigError

        raise ConfigError(f"the {backbone} backbone needs the 'peft' package; install it with "
                          "`pip install 'spl-sdk[lora]'`.") from None
    StableDiffusionLoraLoaderMixin.load_lora_into_unet(state_dict, network_alphas, unet=unet,
                                                       adapter_name=adapter_name)
    unet.fuse_lora(lora_scale=scale, adapter_names=[adapter_name])
    unet.unload_lora()
    return unet


class FusedLoRA:
    """Mixin for backbones that fuse an LCM-LoRA adapter into the UNet once the parts are loaded."""

    name: ClassVar[str]
    default_adapter: ClassVar[str]
    lora_family: ClassVar[str]
    lora_loader: ClassVar[Callable[..., Any]] = staticmethod(load_lora_state_dict)

    @classmethod
    def download_hint(cls, model: str) -> str:
        """Also name the adapter, which an offline machine needs as the folder's lcm_lora/."""
        return (f"{loading.how_to_get(model)}, with `hf download {cls.default_adapter} --local-dir "
                f"{LORA_SUBFOLDER}` copied into that folder as its {LORA_SUBFOLDER}/ subfolder")

    @classmethod
    def adapt(cls, parts: dict[str, Any], source: str | Path, *, adapter: str | Path | None = None,
              lora_scale: float = 1.0) -> dict[str, Any]:
        """Fuse the adapter: ``adapter`` if given, else ``lcm_lora/`` in a local model folder, else the Hub's."""
        fuse_adapter(parts["unet"], source, adapter or None, default=cls.default_adapter,
                     scale=lora_scale, loader=cls.lora_loader, family=cls.lora_family,
                     backbone=cls.name)
        return parts


class LCMLoRASD15(FusedLoRA, DiffusersBackbone):
    """Stable Diffusion 1.5 plus the LCM-LoRA adapter (fused), showing a second family member plugs in."""

    extra = "lora"  # peft merges the LCM-LoRA into the UNet

    name: ClassVar[str] = "lcm-lora-sd15"
    default_model: ClassVar[str | None] = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    default_adapter: ClassVar[str] = "latent-consistency/lcm-lora-sdv1-5"
    lora_family: ClassVar[str] = "SD 1.5"


def fuse_adapter(unet: Any, source: str | Path, adapter: str | Path | None, *, default: str,
                 scale: float, loader: Any, family: str, backbone: str) -> Any:
    """Find the adapter (given, ``lcm_lora/`` in a local model folder, else ``default`` on the Hub) and fuse it."""
    if adapter is None and isinstance(source, Path) and (source / LORA_SUBFOLDER).is_dir():
        adapter = source / LORA_SUBFOLDER
    adapter = adapter or default
    where = loading.resolve_model(str(adapter), subfolders=(), example=default)
    hint = (f"download it on a machine with network access with `hf download {adapter} "
            f"--local-dir {LORA_SUBFOLDER}`, copy it into the local {family} model folder as its "
            f"{LORA_SUBFOLDER}/ subfolder and pass that folder with --model")
    state_dict, alphas = loading.load_weights(loader, where, None, hint)
    return fuse_lora(unet, state_dict, alphas, scale=scale, backbone=backbone)
