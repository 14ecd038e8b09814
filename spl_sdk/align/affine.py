"""Global warp: OpenCV's ECC on structure maps, coarse to fine, refitted without the pixels that changed."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

COARSEST_SIDE = 48  # the pyramid halves while the short side stays at least this
ITERATIONS, EPSILON = 60, 1e-5  # per level; ECC stops earlier once its correlation gains less
# After the first fit, pixels whose structure disagrees more than this many times the median
# disagreement are left out of the refit (the edit changed them; they must not drag the warp).
OUTLIER_FACTOR = 3.0


def _ecc(template: np.ndarray, moving: np.ndarray, warp: np.ndarray, motion: int,
         mask: np.ndarray | None = None) -> np.ndarray:
    """One ECC fit from ``warp``; an ECC that does not converge keeps the warp it was given."""
    import cv2
    import numpy as np

    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, ITERATIONS, EPSILON)
    try:
        if mask is None:
            _, out = cv2.findTransformECC(template, moving, warp.copy(), motion, criteria, None, 5)
        else:
            full = np.full(moving.shape, 255, np.uint8)
            _, out = cv2.findTransformECCWithMask(template, moving, mask, full, warp.copy(), motion,
                                                  criteria, 5)
    except cv2.error:
        return warp
    return out


def warp_map(image: np.ndarray, warp: np.ndarray, size: tuple[int, int], border: int | None = None) -> np.ndarray:
    """``image`` sampled at ``warp`` (2x3, template pixel -> image pixel) on a grid of ``size`` (W, H)."""
    import cv2

    border = cv2.BORDER_REPLICATE if border is None else border
    return cv2.warpAffine(image, warp, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=border)


def scaled(warp: np.ndarray, factor: float) -> np.ndarray:
    """The same warp on a grid ``factor`` times finer (pixel centers kept: x' = f (x + 1/2) - 1/2)."""
    import numpy as np

    t = np.array([[factor, 0, (factor - 1) / 2], [0, factor, (factor - 1) / 2], [0, 0, 1]])
    full = np.vstack([warp, [0, 0, 1]])
    return (t @ full @ np.linalg.inv(t))[:2].astype(np.float32)


def fit(template: np.ndarray, moving: np.ndarray, start: np.ndarray, affine: bool = True) -> np.ndarray:
    """The 2x3 warp that maps the template's pixels onto the moving map, coarse to fine, robust refit."""
    import cv2
    import numpy as np

    motion = cv2.MOTION_AFFINE if affine else cv2.MOTION_EUCLIDEAN
    pyramid = [(template, moving)]
    while min(pyramid[-1][0].shape) >= 2 * COARSEST_SIDE:
        t, m = pyramid[-1]
        pyramid.append((cv2.pyrDown(t), cv2.pyrDown(m)))
    warp = scaled(start, 0.5 ** (len(pyramid) - 1))
    for level in range(len(pyramid) - 1, -1, -1):
        warp = _ecc(*pyramid[level], warp, motion)
        if level:
            warp = scaled(warp, 2.0)
    h, w = template.shape
    warped = warp_map(moving, warp, (w, h))
    diff = np.abs(template / (template.mean() + 1e-6) - warped / (warped.mean() + 1e-6))
    diff = cv2.GaussianBlur(diff, (0, 0), 4.0)
    inliers = (diff <= OUTLIER_FACTOR * float(np.median(diff))).astype(np.uint8) * 255
    # something changed: fit again on what did not (the masked ECC is in OpenCV 4.12 and later)
    if inliers.mean() < 255 * 0.98 and hasattr(cv2, "findTransformECCWithMask"):
        warp = _ecc(template, moving, warp, motion, inliers)
    return warp
