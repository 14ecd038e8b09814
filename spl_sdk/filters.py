"""Box and guided filters shared by the SPL loss and the mask extractors."""

from __future__ import annotations

from spl_sdk.lazy import functional as F
from spl_sdk.lazy import torch


def _window_sum(x: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    """Sum of the 2r+1 entries around each index along ``dim`` (zeros outside), by doubling.

    Partial sums of 1, 2, 4, ... entries are added for the binary digits of
    2r+1, so each output is a sum of at most 2r+1 inputs (float32-exact as a
    direct sum) at O(log r) passes instead of 2r+1.
    """
    k, n = 2 * r + 1, x.shape[dim]
    pad = (r, r) if dim == x.dim() - 1 else (0, 0, r, r)
    part = F.pad(x, pad)
    total, owned, offset, span = None, False, 0, 1
    while True:
        if k & span:
            piece = part.narrow(dim, offset, n)
            if total is None:
                total = piece
            elif owned:
                total.add_(piece)
            else:
                total, owned = total + piece, True
            offset += span
        if span * 2 > k:
            return total if owned else total.clone()
        m = part.shape[dim] - span
        part = part.narrow(dim, 0, m) + part.narrow(dim, span, m)
        span *= 2


_PLANE_BY_PLANE = 1 << 20  # pixels per plane from which several planes are filtered one by one


def box_filter(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over the (2r+1) x (2r+1) window of each pixel, the window clipped at the borders.

    Separable sliding sums divided by the number of pixels really inside the
    window (docs/method.md section 3); unlike a cumulative-sum filter it keeps full
    float32 precision on large images, which matters because SPL subtracts
    window means of similar size. Works with autograd.
    """
    if r <= 0:
        return x
    shape = x.shape
    h, w = shape[-2], shape[-1]
    y = x.reshape(-1, h, w)
    if y.shape[0] > 1 and h * w >= _PLANE_BY_PLANE and not torch.is_grad_enabled():
        # large planes one at a time: the padded copies and partial sums of one plane only
        out = torch.empty_like(y)
        for i in range(y.shape[0]):
            out[i] = _window_sum(_window_sum(y[i:i + 1], r, 2), r, 1)[0]
        y = out
    else:
        y = _window_sum(_window_sum(y, r, 2), r, 1)

    def count(size: int) -> torch.Tensor:
        i = torch.arange(size, device=x.device)
        return ((i + r).clamp(max=size - 1) - (i - r).clamp(min=0) + 1).to(y.dtype)

    y /= count(h)[:, None]
    y /= count(w)[None, :]
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
