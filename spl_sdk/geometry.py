"""Working sizes and resizing between the source's own size and the diffusion's working size."""

from __future__ import annotations

from spl_sdk.lazy import functional as F
from spl_sdk.lazy import torch


def working_shape(height: int, width: int, long_side: int, multiple: int = 8) -> tuple[int, int]:
    """(h, w) with the long side ``long_side``, the aspect ratio kept, each a multiple of ``multiple``."""
    scale = long_side / max(height, width)

    def fit(n: int) -> int:
        return max(multiple, int(round(n * scale / multiple)) * multiple)

    return fit(height), fit(width)


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (B, C, H, W) to ``size`` = (h, w): antialiased bicubic down, bicubic up, clamped."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    out = F.interpolate(image.float(), size=size, mode="bicubic", align_corners=False, antialias=True)
    return out.clamp(-1, 1) if image.min() < 0 else out.clamp(0, 1)
