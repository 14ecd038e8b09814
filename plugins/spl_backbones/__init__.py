"""Built-in backbones: LCM Dreamshaper v7 (default), SD 1.5 + LCM-LoRA, and two random-weight models."""

from __future__ import annotations

from spl_backbones.lcm import LCMDreamshaperV7
from spl_backbones.lora import LCMLoRASD15
from spl_backbones.sd15_random import SD15Random
from spl_backbones.tiny import TinyRandom
from spl_sdk import hookimpl
from spl_sdk.hookspecs import Register


@hookimpl
def spl_register_backbones(register: Register) -> None:
    """Register every built-in backbone."""
    for cls in (LCMDreamshaperV7, LCMLoRASD15, TinyRandom, SD15Random):
        register(cls)
