"""Test helper: a third party's mask extractor named 'spl', like the built-in loss term (one name, two kinds)."""

from __future__ import annotations

import types

import torch
from pydantic import Field

from spl_sdk import hookimpl
from spl_sdk.components import ComponentOptions, MaskExtractor


def clash_module(name: str = "spl_clash") -> types.ModuleType:
    """A plug-in module registering the mask extractor 'spl' with one option, ``level``."""
    module = types.ModuleType(name)

    class SplMask(MaskExtractor):
        """A mask extractor that shares its name with the spl loss term."""

        name = "spl"

        class Options(ComponentOptions):
            level: float = Field(0.5, ge=0, le=1, description="Threshold.")

        def extract(self, context):
            return torch.ones(1, 1, *context.source_image.shape[-2:])

    @hookimpl
    def spl_register_mask_extractors(register):
        register(SplMask)

    module.spl_register_mask_extractors = spl_register_mask_extractors
    return module
