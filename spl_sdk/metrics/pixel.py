"""Background fidelity as PIE-Bench computes it: both images times the unedited-region mask.

Images are (H, W, 3) uint8 arrays; ``keep`` is the (H, W) region to compare (PIE-Bench:
its edit mask inverted). Pixels outside it are set to 0 in both images and the metric
runs on the whole frame, so MSE is a mean over all pixels (PIE-Bench's convention).
"""

from __future__ import annotations

from typing import Any

from spl_sdk.lazy import numpy as np


def masked_pair(source: np.ndarray, edited: np.ndarray, keep: np.ndarray | None) -> tuple[Any, Any]:
    """(source, edited) as (1, 3, H, W) float tensors in [0, 1], zero outside ``keep``."""
    import torch

    a = source.astype(np.float32) / 255.0
    b = edited.astype(np.float32) / 255.0
    if keep is not None:
        m = np.asarray(keep, dtype=np.float32)[..., None]
        a, b = a * m, b * m
    to = lambda x: torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].contiguous()  # noqa: E731
    return to(a), to(b)


def psnr(source: np.ndarray, edited: np.ndarray, keep: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB (data range 1), torchmetrics."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    a, b = masked_pair(source, edited, keep)
    return float(peak_signal_noise_ratio(a, b, data_range=1.0))


def mse(source: np.ndarray, edited: np.ndarray, keep: np.ndarray | None = None) -> float:
    """Mean squared error of [0, 1] values, torchmetrics."""
    from torchmetrics.functional import mean_squared_error

    a, b = masked_pair(source, edited, keep)
    return float(mean_squared_error(a, b))


def ssim(source: np.ndarray, edited: np.ndarray, keep: np.ndarray | None = None) -> float:
    """Structural similarity (Gaussian window 11, sigma 1.5, data range 1), torchmetrics."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    a, b = masked_pair(source, edited, keep)
    return float(structural_similarity_index_measure(a, b, data_range=1.0))


def lpips_distance(net: Any, source: np.ndarray, edited: np.ndarray,
                   keep: np.ndarray | None = None) -> float:
    """LPIPS of the masked pair, inputs mapped to [-1, 1] as the network expects."""
    import torch

    a, b = masked_pair(source, edited, keep)
    device = next(net.parameters()).device
    with torch.no_grad():
        return float(net(a.to(device) * 2 - 1, b.to(device) * 2 - 1).mean())
