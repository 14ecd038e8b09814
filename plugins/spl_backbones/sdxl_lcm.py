"""``lcm-sdxl`` (the distilled LCM-SDXL UNet) and ``lcm-lora-sdxl`` (SDXL base + LCM-LoRA, fused)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from spl_backbones import loading
from spl_backbones.lora import FusedLoRA, load_sdxl_lora_state_dict
from spl_backbones.sdxl import SDXL_SUBFOLDERS, SDXLBackbone, single_part
from spl_sdk.lazy import torch

LCM_UNET_SUBFOLDER = "lcm_unet"  # the LCM-SDXL UNet inside a local SDXL folder


class LCMSDXL(SDXLBackbone):
    """LCM-SDXL: the distilled ``latent-consistency/lcm-sdxl`` UNet with the rest of SDXL base 1.0."""

    name: ClassVar[str] = "lcm-sdxl"
    default_unet: ClassVar[str] = "latent-consistency/lcm-sdxl"
    unet_subfolder: ClassVar[str] = LCM_UNET_SUBFOLDER

    @classmethod
    def required_subfolders(cls) -> tuple[str, ...]:
        """SDXL base's parts except its UNet (never used); ``lcm_unet/`` is optional (else the Hub's)."""
        return tuple(s for s in SDXL_SUBFOLDERS if s != "unet")

    @classmethod
    def download_hint(cls, model: str) -> str:
        """Also name the UNet, which an offline machine needs as the folder's lcm_unet/."""
        return (f"{loading.how_to_get(model)}, with `hf download {cls.default_unet} --local-dir "
                f"{LCM_UNET_SUBFOLDER}` copied into that folder as its {LCM_UNET_SUBFOLDER}/ subfolder")

    @classmethod
    def part_loaders(cls, source: str | Path, dtype: torch.dtype,
                     hint: str) -> dict[str, Callable[[], Any]]:
        """SDXL base's loaders, the UNet from ``lcm_unet/`` of a local folder or else from the Hub."""
        from diffusers import UNet2DConditionModel

        loaders = super().part_loaders(source, dtype, hint)
        if not (isinstance(source, Path) and (source / LCM_UNET_SUBFOLDER).is_dir()):
            loaders["unet"] = single_part(UNet2DConditionModel.from_pretrained, cls.default_unet,
                                          "unet", dtype, cls.default_unet, hint)
        return loaders


class LCMLoRASDXL(FusedLoRA, SDXLBackbone):
    """SDXL base 1.0 with the ``latent-consistency/lcm-lora-sdxl`` adapter fused into the UNet."""

    extra = "lora"  # peft merges the LCM-LoRA into the UNet

    name: ClassVar[str] = "lcm-lora-sdxl"
    default_adapter: ClassVar[str] = "latent-consistency/lcm-lora-sdxl"
    lora_family: ClassVar[str] = "SDXL"
    lora_loader: ClassVar[Callable[..., Any]] = staticmethod(load_sdxl_lora_state_dict)

    class Options(SDXLBackbone.Options):
        """SDXL's part replacements plus the LoRA adapter and its scale."""

        adapter: str | None = Field(None, description=(
            "Hub id or folder of the LCM-LoRA; unset: lcm_lora/ in a local model folder, else "
            "latent-consistency/lcm-lora-sdxl."))
        lora_scale: float = Field(1.0, gt=0, le=4, description="Scale of the LoRA when it is fused.")
