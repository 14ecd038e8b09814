"""Applying an estimated warp at full size on the images' device, with a coverage mask and a fill."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spl_sdk.lazy import functional as F
from spl_sdk.lazy import torch

if TYPE_CHECKING:
    import numpy as np

FILL_SAMPLES = 200_000  # pixels used to fit the color map of the fill (a least-squares 4x3 matrix)


def resized(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``image`` at ``size`` (H, W): bicubic, antialiased when shrinking; itself when already that size."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)


def full_map(warp: np.ndarray, flow: np.ndarray | None, size: tuple[int, int], grid: tuple[int, int],
             device: torch.device) -> torch.Tensor:
    """(1, H, W, 2) pixel coordinates, in the edit resized to ``size``, that each source pixel takes.

    ``warp`` (2x3) and ``flow`` (h, w, 2) were estimated on the smaller ``grid``
    (h, w); both are carried to ``size`` keeping pixel centers (x' = s (x + 1/2) - 1/2).
    """
    h_full, w_full = size
    sy, sx = h_full / grid[0], w_full / grid[1]
    ys = torch.arange(h_full, device=device, dtype=torch.float32)
    xs = torch.arange(w_full, device=device, dtype=torch.float32)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    # to grid coordinates, displace by the flow there, warp, and back to full-size coordinates
    ex, ey = (gx + 0.5) / sx - 0.5, (gy + 0.5) / sy - 0.5
    if flow is not None:
        d = torch.from_numpy(flow).to(device).permute(2, 0, 1)[None]
        d = F.interpolate(d, size=size, mode="bilinear", align_corners=False)[0]
        ex, ey = ex + d[0], ey + d[1]
    a = [float(v) for v in warp.reshape(-1)]
    wx = a[0] * ex + a[1] * ey + a[2]
    wy = a[3] * ex + a[4] * ey + a[5]
    return torch.stack([(wx + 0.5) * sx - 0.5, (wy + 0.5) * sy - 0.5], -1)[None]


def sample(image: torch.Tensor, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``image`` (1, C, H, W) read at pixel ``coords`` (bicubic), and the coverage (1, 1, H, W) in [0, 1]."""
    h, w = image.shape[-2:]
    scale = torch.tensor([2.0 / w, 2.0 / h], device=coords.device)
    grid = (coords + 0.5) * scale - 1.0  # align_corners=False convention of grid_sample
    out = F.grid_sample(image, grid, mode="bicubic", padding_mode="border", align_corners=False)
    ones = torch.ones_like(image[:, :1])
    coverage = F.grid_sample(ones, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.clamp(-1, 1), coverage.clamp(0, 1)


def fill_uncovered(source: torch.Tensor, warped: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """Where the edit does not reach, the source recolored like the edit (a global affine color map).

    The map [r g b 1] -> [r' g' b'] is fitted by least squares on the fully covered
    pixels, so the uncovered border gets the source's structure in the edit's tones;
    partly covered pixels blend the two by their coverage.
    """
    if bool((coverage >= 1).all()):
        return warped
    inside = (coverage[0, 0] >= 0.999).reshape(-1)
    src = source[0].reshape(3, -1).T[inside]
    dst = warped[0].reshape(3, -1).T[inside]
    step = max(1, src.shape[0] // FILL_SAMPLES)
    design = torch.cat([src[::step], torch.ones_like(src[::step, :1])], 1).double()
    matrix = torch.linalg.lstsq(design.cpu(), dst[::step].double().cpu()).solution.to(source.device)
    flat = torch.cat([source[0].reshape(3, -1).T, torch.ones_like(source[0, :1].reshape(-1, 1))], 1)
    fill = (flat.double() @ matrix).float().T.reshape(source.shape).clamp(-1, 1)
    return coverage * warped + (1 - coverage) * fill
