"""Cross-attention maps of the source and target branches, summed over steps, keyed by spatial size."""

from __future__ import annotations

import math

from spl_sdk.components import AttentionMaps
from spl_sdk.lazy import functional as F
from spl_sdk.lazy import torch

MAX_PIXELS = 32 * 32  # docs/method.md section 4: only layers with at most 32 x 32 query pixels are stored


def spatial_shape(num_pixels: int, latent_hw: tuple[int, int] | None) -> tuple[int, int] | None:
    """(h, w) of a UNet level with ``num_pixels`` query pixels, from the latent shape (or a square)."""
    if latent_hw is not None:
        h, w = latent_hw
        for _ in range(16):
            if h * w == num_pixels:
                return h, w
            if h * w < num_pixels or (h == 1 and w == 1):
                break
            h, w = math.ceil(h / 2), math.ceil(w / 2)  # diffusers' stride-2 downsampler
    side = math.isqrt(num_pixels)
    return (side, side) if side * side == num_pixels else None


class AttentionStore:
    """Running sums of head-averaged (source, target) maps per (h, w), with the number of maps added."""

    def __init__(self, max_pixels: int = MAX_PIXELS) -> None:
        self.max_pixels = max_pixels
        self.sums: dict[tuple[int, int], torch.Tensor] = {}  # (2, h*w, tokens) float32
        self.counts: dict[tuple[int, int], int] = {}

    def add(self, shape: tuple[int, int], source: torch.Tensor, target: torch.Tensor) -> None:
        """Add one layer's (h*w, tokens) maps of both branches at one step."""
        maps = torch.stack([source, target]).detach().float()
        if shape in self.sums:
            self.sums[shape] += maps
            self.counts[shape] += 1
        else:
            self.sums[shape] = maps.clone()
            self.counts[shape] = 1

    def reset(self) -> None:
        """Forget every stored map (a new edit)."""
        self.sums.clear()
        self.counts.clear()

    def nearest(self, res: int) -> tuple[int, int] | None:
        """The stored (h, w) whose long side is ``res``, else the one closest to it in scale."""
        if not self.sums:
            return None
        return min(self.sums, key=lambda hw: (abs(math.log(max(hw) / res)), -max(hw)))

    def maps(self, res: int) -> AttentionMaps | None:
        """Average maps with long side ``res`` as (res_h, res_w, tokens); resized from the nearest level if needed."""
        shape = self.nearest(res)
        if shape is None:
            return None
        h, w = shape
        mean = (self.sums[shape] / self.counts[shape]).view(2, h, w, -1)
        size = (max(1, round(res * h / max(h, w))), max(1, round(res * w / max(h, w))))
        if size != (h, w):
            grid = mean.permute(0, 3, 1, 2)  # (2, tokens, h, w)
            grid = F.interpolate(grid, size=size, mode="bilinear", align_corners=False,
                                 antialias=True)
            mean = grid.permute(0, 2, 3, 1).contiguous()
        return AttentionMaps(source=mean[0], target=mean[1], res=res)
