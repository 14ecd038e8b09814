"""Smooth residual warp: OpenCV's DIS optical flow between normalized luminances, smoothed widely."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# Standard deviation of the smoothing, as a fraction of the short side: a residual warp of an
# edit model is of low frequency (a bulge, a drift across the frame), and anything finer than
# this is as likely to be the edit's own change of content as a misplacement.
SMOOTH_FRACTION = 1 / 12
PRIOR = 0.5  # weight of "no motion" in the smoothing, as a fraction of the average weight
PRE_BLUR = 2.0  # px; both images blurred alike, so the edit's own blur barely shifts its edges


def normalized(luma: np.ndarray) -> np.ndarray:
    """8-bit local contrast normalization of the blurred luminance: (L - local mean) / local deviation.

    A change of tone or color is about a local gain and offset of the luminance,
    which this removes; DIS optical flow (brightness constancy, CV_8UC1) then sees
    the same picture in the source and the edit.
    """
    import cv2
    import numpy as np

    g = cv2.GaussianBlur(luma, (0, 0), PRE_BLUR)
    sigma = max(4.0, min(luma.shape) / 64)
    mean = cv2.GaussianBlur(g, (0, 0), sigma)
    dev = np.sqrt(np.maximum(cv2.GaussianBlur((g - mean) ** 2, (0, 0), sigma), 0))
    return np.clip(128 + 40 * (g - mean) / (dev + 0.01), 0, 255).astype(np.uint8)


def residual_flow(template: np.ndarray, moving: np.ndarray, weight: np.ndarray,
                  raft_device: Any = None) -> np.ndarray:
    """(H, W, 2) displacement d with moving(x + d(x)) ~ template(x) (luminances), smooth.

    The raw flow (OpenCV's DIS, or torchvision's RAFT on ``raft_device`` when given)
    is averaged with a wide Gaussian weighted by ``weight`` (where the source has
    structure and the edit covers it): a normalized convolution.
    """
    import cv2
    import numpy as np

    if raft_device is not None:
        from spl_sdk.align.raft import raft_flow

        raw = raft_flow(normalized(template), normalized(moving), raft_device)
    else:
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        raw = dis.calc(normalized(template), normalized(moving), None)
    sigma = max(8.0, min(template.shape) * SMOOTH_FRACTION)
    w = weight.astype(np.float32)
    den = cv2.GaussianBlur(w, (0, 0), sigma) + PRIOR * float(w.mean()) + 1e-6
    smooth = np.stack([cv2.GaussianBlur(raw[..., i] * w, (0, 0), sigma) / den for i in range(2)], -1)
    return smooth.astype(np.float32)
