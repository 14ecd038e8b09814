"""Built-in mask extractors: cross-attention (guided or bilinear upsampling) and user mask files."""

from __future__ import annotations

from spl_masks.extractors import CrossAttentionBilinearMask, CrossAttentionMask
from spl_masks.file import FileMask
from spl_sdk import hookimpl
from spl_sdk.hookspecs import Register

__all__ = ["CrossAttentionBilinearMask", "CrossAttentionMask", "FileMask"]


@hookimpl
def spl_register_mask_extractors(register: Register) -> None:
    """Register the three built-in mask extractors."""
    register(CrossAttentionMask)
    register(CrossAttentionBilinearMask)
    register(FileMask)
