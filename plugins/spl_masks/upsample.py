"""Low-resolution masks to full size: progressive guided upsampling, or plain bilinear."""

from __future__ import annotations

from spl_sdk.filters import guided_filter, to_gray
from spl_sdk.lazy import functional as F
from spl_sdk.lazy import torch

GUIDED_EPS = 1e-2  # docs/method.md section 5, on a [0, 1] gray guide


def upsample_sizes(src: tuple[int, int], dst: tuple[int, int]) -> list[tuple[int, int]]:
    """(H, W) of each level: doubling from ``src`` while that stays below ``dst``, then ``dst`` exactly.

    The last step is a factor in (1, 2], so sizes that are not 16 * 2^k and
    non-square images end exactly at the image size.
    """
    h, w = src
    height, width = dst
    sizes = []
    while h * 2 < height or w * 2 < width:
        h, w = min(h * 2, height), min(w * 2, width)
        sizes.append((h, w))
    sizes.append((height, width))
    return sizes


def gray_guide(image: torch.Tensor) -> torch.Tensor:
    """(1, 1, H, W) gray guide in [0, 1] from an RGB image in [-1, 1]."""
    return to_gray((image.float() + 1) / 2).clamp(0, 1)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B, C, H, W), antialiased when shrinking."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def guided_upsample(mask: torch.Tensor, image: torch.Tensor, *, eps: float = GUIDED_EPS,
                    radius: int = 1, radius_step: int = 1) -> torch.Tensor:
    """Upsample a (1, 1, h, w) mask to the image's size along the image's edges (docs/method.md section 5).

    Each level doubles the mask bilinearly, then runs the guided filter with
    the gray image resized to that level as guide; the radius is ``radius``
    (1) at the first level and grows by ``radius_step`` (1) per level, so every
    level smooths over about the same fraction of the picture while snapping
    the mask to edges.
    """
    guide_full = gray_guide(image)
    m = mask.to(guide_full.device, torch.float32)
    for level, size in enumerate(upsample_sizes(tuple(m.shape[-2:]), tuple(image.shape[-2:])), 1):
        m = resize(m, size)
        r = radius + (level - 1) * radius_step
        m = guided_filter(resize(guide_full, size), m, r, eps).clamp(0, 1)
    return m


def bilinear_upsample(mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Upsample a (1, 1, h, w) mask to the image's size in one bilinear step (the baseline)."""
    m = mask.to(image.device, torch.float32)
    return resize(m, tuple(image.shape[-2:])).clamp(0, 1)
