"""``lcm-dreamshaper-v7``: the default backbone, LCM-distilled Dreamshaper v7 in diffusers layout."""

from __future__ import annotations

from typing import ClassVar

from spl_backbones.diffusers_backbone import DiffusersBackbone


class LCMDreamshaperV7(DiffusersBackbone):
    """LCM Dreamshaper v7 (SD 1.5 family) from the Hugging Face Hub or a local folder."""

    name: ClassVar[str] = "lcm-dreamshaper-v7"
    default_model: ClassVar[str | None] = "SimianLuo/LCM_Dreamshaper_v7"
