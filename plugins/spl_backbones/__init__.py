"""Built-in backbones: LCM Dreamshaper v7 (default), SD 1.5 + LCM-LoRA, LCM-SDXL, SDXL + LCM-LoRA, SD3.5, FLUX.1,
the instruction-edit FLUX.1 Kontext, Qwen-Image-Edit and FLUX.2 [klein], and random-weight models."""

from __future__ import annotations

from spl_backbones.flux import FluxDev, FluxSchnell
from spl_backbones.flux2 import Flux2Klein
from spl_backbones.kontext import FluxKontextDev
from spl_backbones.lcm import LCMDreamshaperV7
from spl_backbones.lora import LCMLoRASD15
from spl_backbones.qwen_image import QwenImageEdit
from spl_backbones.sd3 import SD3Backbone
from spl_backbones.sd15_random import SD15Random
from spl_backbones.sdxl_lcm import LCMSDXL, LCMLoRASDXL
from spl_backbones.sdxl_random import SDXLRandom, TinyRandomSDXL
from spl_backbones.tiny import TinyRandom
from spl_backbones.tiny_flow import TinyRandomFlux, TinyRandomSD3
from spl_backbones.tiny_instruct import TinyRandomKlein, TinyRandomKontext, TinyRandomQwenEdit
from spl_sdk import hookimpl
from spl_sdk.hookspecs import Register


@hookimpl
def spl_register_backbones(register: Register) -> None:
    """Register every built-in backbone."""
    for cls in (LCMDreamshaperV7, LCMLoRASD15, TinyRandom, SD15Random, LCMSDXL, LCMLoRASDXL,
                TinyRandomSDXL, SDXLRandom, SD3Backbone, FluxDev, FluxSchnell, TinyRandomSD3,
                TinyRandomFlux, FluxKontextDev, TinyRandomKontext, QwenImageEdit,
                TinyRandomQwenEdit, Flux2Klein, TinyRandomKlein):
        register(cls)
