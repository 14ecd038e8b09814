"""Edits confined to a region (``edit_area`` 'masked'): the latent blend every method shares, and the composite.

Standard practice for confined edits (diffusers inpainting, ComfyUI's latent noise mask)
is to hold the latent outside the region at the source's own latent brought to the same
noise level during sampling and, at the end, to composite at full resolution. The
feather runs inward only: a pixel outside the region is exactly the photo's, one inside
near the border a blend (docs/method.md, "Edits confined to a region").
"""

from __future__ import annotations

from spl_sdk.errors import ConfigError
from spl_sdk.filters import box_filter
from spl_sdk.geometry import resize
from spl_sdk.lazy import torch

FEATHER = 0.01  # feather width as a fraction of the image's long side (at least one pixel)
NO_REGION = ("--edit-area masked edits only inside a region, but none was given; pass --mask FILE "
             "(mask= in Python), draw or upload one in the studio, set mask words (--mask-words-source "
             "or --mask-words-target), or use --edit-area whole.")


def feather_width(size: tuple[int, int]) -> int:
    """Width in pixels of the inward feather at an image size (H, W)."""
    return max(1, round(FEATHER * max(size)))


def feathered(region: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(1, 1, H, W) weights of the edit: 0 outside the region, rising to 1 over the feather inside."""
    inside = (resize(region.float(), size) >= 0.5).float()
    return box_filter(inside, feather_width(size)).clamp(0, 1) * inside


def composite(source: torch.Tensor, edited: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """``edited`` inside ``region`` (feathered), ``source`` exactly outside; images (1, 3, H, W) in [-1, 1]."""
    weight = feathered(region.to(edited.device), tuple(edited.shape[-2:]))
    return weight * edited + (1 - weight) * source.to(edited.device, edited.dtype)


def latent_outside(region: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    """(1, 1, h, w) share of each latent pixel of ``like`` outside ``region`` (area average); None for no region."""
    if region is None:
        return None
    inside = torch.nn.functional.interpolate(region.float(), size=like.shape[-2:], mode="area")
    return (1 - inside).clamp(0, 1).to(like.device)


def hold_outside(latent: torch.Tensor, source: torch.Tensor, outside: torch.Tensor | None) -> torch.Tensor:
    """``latent`` inside the region, ``source`` (the photo's latent at the same noise level) outside.

    z <- m_out * z_src(t) + (1 - m_out) * z; a latent pixel wholly outside (m_out = 1) is exactly
    ``source``. ``outside`` None (an edit of the whole image) returns ``latent`` unchanged.
    """
    if outside is None:
        return latent
    return outside * source.to(latent.dtype) + (1 - outside) * latent


def require_region(region: torch.Tensor | None) -> torch.Tensor:
    """The region of a confined edit, or one sentence saying how to give one."""
    if region is None:
        raise ConfigError(NO_REGION)
    return region
