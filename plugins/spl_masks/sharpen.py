"""Gamma sharpening of a mask's soft tail at the image's edge pixels (docs/method.md section 5, step 4)."""

from __future__ import annotations

from spl_sdk.lazy import functional as F
from spl_sdk.lazy import torch

BLOCK = 15  # adaptive-threshold block size
OFFSET = 5  # adaptive-threshold constant C, in 8-bit levels
MARGIN = 20 / 255  # added to the mean mask value at edges
POWER = 4


def gaussian_kernel(size: int) -> torch.Tensor:
    """1-D Gaussian of ``size`` taps with OpenCV's default sigma for that size, summing to 1."""
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8  # cv2.getGaussianKernel with sigma <= 0
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-(x * x) / (2 * sigma * sigma))
    return (k / k.sum()).float()


def gray8(image: torch.Tensor) -> torch.Tensor:
    """(1, 1, H, W) 8-bit gray levels (as floats) of an RGB image in [-1, 1], BT.601 like cv2's RGB2GRAY."""
    rgb = ((image.float() + 1) / 2).clamp(0, 1) * 255
    weights = torch.tensor([0.299, 0.587, 0.114], device=rgb.device).view(1, 3, 1, 1)
    return (rgb * weights).sum(1, keepdim=True).round()


def edge_pixels(image: torch.Tensor, block: int = BLOCK, offset: float = OFFSET) -> torch.Tensor:
    """Boolean (1, 1, H, W): pixels that OpenCV's adaptive Gaussian threshold sets to 0.

    cv2.adaptiveThreshold(gray, 255, ADAPTIVE_THRESH_GAUSSIAN_C, THRESH_BINARY,
    block, C) keeps a pixel (255) when gray > round(gauss_blur(gray)) - C, the
    blur taken with replicated borders; the pixels it zeroes are those darker
    than their neighborhood by at least C: the thin lines along edges.
    """
    g = gray8(image)
    k = gaussian_kernel(block).to(g.device)
    pad = block // 2
    blur = F.pad(g, (pad, pad, pad, pad), mode="replicate")
    blur = F.conv2d(blur, k.view(1, 1, 1, -1))
    blur = F.conv2d(blur, k.view(1, 1, -1, 1))
    return g <= blur.round() - offset


def sharpen(mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Push mask values below T towards 0 with v -> T (v / T)^4 (docs/method.md section 5, step 4).

    T is the mean mask value on the image's edge pixels plus 20/255, capped at
    1 so that fully-inside pixels stay at 1; with no edge pixels the mask is
    returned unchanged.
    """
    edges = edge_pixels(image).expand_as(mask)
    if not bool(edges.any()):
        return mask
    t = (mask[edges].mean() + MARGIN).clamp(max=1.0)
    return torch.where(mask < t, t * (mask / t) ** POWER, mask)
