"""Box and guided filters shared by the SPL loss and the mask extractors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def box_filter(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over the (2r+1) x (2r+1) window of each pixel, the window clipped at the borders.

    Separable average pooling with ``count_include_pad=False`` divides by the
    number of pixels really inside the window (DESIGN.md section 3), and unlike
    a cumulative-sum filter it keeps full float32 precision on large images,
    which matters because SPL subtracts window means of similar size.
    """
    if r <= 0:
        return x
    shape = x.shape
    y = x.reshape(-1, 1, shape[-2], shape[-1])
    k = 2 * r + 1
    y = F.avg_pool2d(y, (1, k), stride=1, padding=(0, r), count_include_pad=False)
    y = F.avg_pool2d(y, (k, 1), stride=1, padding=(r, 0), count_include_pad=False)
    return y.reshape(shape)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """Edge-preserving smoothing of ``src`` steered by ``guide`` (He et al., gray guide).

    Both are (B, 1, H, W) (``src`` may have more channels); output is src's shape.
    """
    mean_i = box_filter(guide, r)
    mean_p = box_filter(src, r)
    cov_ip = box_filter(guide * src, r) - mean_i * mean_p
    var_i = box_filter(guide * guide, r) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_filter(a, r) * guide + box_filter(b, r)


def to_gray(image: torch.Tensor) -> torch.Tensor:
    """Mean of the RGB channels, keeping a channel axis: (B, 3, H, W) -> (B, 1, H, W)."""
    return image.mean(dim=1, keepdim=True)
