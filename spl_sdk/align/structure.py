"""What registration compares: the photo's structure (blurred gradient magnitude), not its color."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# Working grid of the estimation: the source shrunk so that its long side is at most this. Warps
# are smooth and ECC is sub-pixel, so the estimate carries to the full size scaled (docs/align.md).
ESTIMATE_SIDE = 1024
PRE_BLUR = 3.0  # px of the estimation grid (see structure())


@contextmanager
def repeatable() -> Iterator[None]:
    """OpenCV without Intel IPP: with it, the same call can differ in the last bit from run to run.

    Measured here: structure maps of one image differed by 6e-8 between calls, enough
    for ECC to land 1e-6 px elsewhere and for the CLI and the batch worker to write
    different pixels; without IPP every call gives the same result.
    """
    import cv2

    used = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(False)
    try:
        yield
    finally:
        cv2.ipp.setUseIPP(used)


def gray(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 luminance in [0, 1] of an (H, W, 3) float32 image in [0, 1]."""
    import cv2

    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def structure(luma: np.ndarray, blur: float = PRE_BLUR) -> np.ndarray:
    """Gradient magnitude of the blurred luminance, blurred again: edges wherever they are, in any color.

    The gradient ignores the edit's change of tone and color. The first blur is
    wide on purpose: an edit is often softer than its photo, and the gradient
    magnitude of a fine texture changes shape under blur, which biases ECC (on the
    bundled old_man pair, a one-pixel shift was estimated at -3.0 px with a 1 px
    blur, at -1.1 px with this one, and the synthetic shifts of tests/moved_edits.py
    stay within 0.12 px). The second blur widens each edge's basin of attraction.
    """
    import cv2

    smooth = cv2.GaussianBlur(luma, (0, 0), blur)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.GaussianBlur(cv2.magnitude(gx, gy), (0, 0), 1.5)


def evened(luma: np.ndarray) -> np.ndarray:
    """Structure at 1 px, divided by its wide local average: what the match is judged on.

    Sharper than :func:`structure`, so two different photos rarely correlate; the
    division by the local average (sigma 1/16 of the short side) evens out a local
    change of contrast, so a recolored region still counts as matching.
    """
    import cv2

    mag = structure(luma, 1.0)
    local = cv2.GaussianBlur(mag, (0, 0), max(2.0, min(mag.shape) / 16))
    return mag / (local + 0.1 * float(mag.mean()) + 1e-6)


def correlation(a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> float:
    """Weighted normalized cross-correlation of two maps (1: same structure, about 0: unrelated)."""
    import numpy as np

    w = weight / max(float(weight.sum()), 1e-9)
    ma, mb = float((a * w).sum()), float((b * w).sum())
    da, db = a - ma, b - mb
    den = np.sqrt(float((da * da * w).sum()) * float((db * db * w).sum()))
    return float((da * db * w).sum() / den) if den > 0 else 0.0
