"""Edits confined to a region: the feathered full-resolution composite that keeps the outside the photo's.

Standard practice for confined edits (diffusers inpainting, ComfyUI's latent noise mask)
is to hold the latent outside the region at the source's own (noised) latent during
sampling and, at the end, to composite at full resolution. The feather runs inward only:
a pixel outside the region is exactly the photo's, one inside near the border a blend.
"""

from __future__ import annotations

from spl_sdk.filters import box_filter
from spl_sdk.geometry import resize
from spl_sdk.lazy import torch

FEATHER = 0.01  # feather width as a fraction of the image's long side (at least one pixel)


def feathered(region: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(1, 1, H, W) weights of the edit: 0 outside the region, rising to 1 over the feather inside."""
    inside = (resize(region.float(), size) >= 0.5).float()
    r = max(1, round(FEATHER * max(size)))
    return box_filter(inside, r).clamp(0, 1) * inside


def composite(source: torch.Tensor, edited: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """``edited`` inside ``region`` (feathered), ``source`` exactly outside; images (1, 3, H, W) in [-1, 1]."""
    weight = feathered(region.to(edited.device), tuple(edited.shape[-2:]))
    return weight * edited + (1 - weight) * source.to(edited.device, edited.dtype)
