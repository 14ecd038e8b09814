"""Measured color statistics of one image region, the input of the offline harmonizer's rules."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from spl_sdk.errors import HarmonizerError
from spl_sdk.lazy import numpy as np

# Hue families in degrees (HSV hue, 0 = red); purple/magenta has no vocabulary word.
HUE_FAMILIES: dict[str, tuple[tuple[float, float], ...]] = {
    "red": ((0.0, 15.0), (345.0, 360.0)),
    "orange": ((15.0, 40.0),),
    "yellow": ((40.0, 70.0),),
    "green": ((70.0, 170.0),),
    "blue": ((170.0, 265.0),),
    "purple": ((265.0, 345.0),),
}
MIN_REGION_PIXELS = 16
CHROMATIC_SATURATION = 0.15  # pixels below this saturation (or too dark) carry no hue vote
CHROMATIC_VALUE = 0.12


@dataclass(frozen=True)
class RegionStats:
    """Means over a region's pixels, all in [0, 1] except ``warmth`` (about -1..1).

    ``warmth`` divides the chroma balance by the mean brightness so that a
    darkened copy of a region keeps its warmth.
    """

    pixels: int
    luminance: float  # BT.601 Y = 0.299 R + 0.587 G + 0.114 B
    saturation: float  # HSV saturation (max - min) / max
    value: float  # HSV value, max(R, G, B)
    warmth: float  # mean(Cr - Cb) / mean(value): color direction, red/yellow > 0 > blue
    hue_share: dict[str, float]  # saturation-weighted share of each hue family among all pixels
    dominant_hue: str | None  # the hue family with the largest share, None when nothing is chromatic


def foreground_mask(mask: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) foreground (mask > 0.5) at ``size`` = (W, H)."""
    m = mask.convert("L")
    if m.size != size:
        m = m.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(m, dtype=np.float32) / 255.0 > 0.5


def check_regions(foreground: np.ndarray) -> None:
    """Raise HarmonizerError when the mask leaves (almost) no foreground or background pixels."""
    for region, label in ((foreground, "foreground (white)"), (~foreground, "background (black)")):
        count = int(region.sum())
        if count < MIN_REGION_PIXELS:
            raise HarmonizerError(
                f"the mask has almost no {label} pixels ({count}); pass a mask whose white part "
                f"covers the pasted object and whose black part the background.")


def region_stats(image: Image.Image, region: np.ndarray) -> RegionStats:
    """Statistics of the pixels of ``image`` (RGB) where ``region`` (H, W bool) is True."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64)[region] / 255.0  # (N, 3)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    # BT.601 chroma without the 0.5 offset: Cb = 0.564 (B - Y), Cr = 0.713 (R - Y)
    warmth = 0.713 * (r - y) - 0.564 * (b - y)
    vmax, vmin = rgb.max(axis=1), rgb.min(axis=1)
    sat = np.where(vmax > 0, (vmax - vmin) / np.maximum(vmax, 1e-12), 0.0)
    hue = _hue_degrees(r, g, b, vmax, vmax - vmin)
    vote = np.where((sat >= CHROMATIC_SATURATION) & (vmax >= CHROMATIC_VALUE), sat, 0.0)
    total = float(len(rgb)) or 1.0
    share = {}
    for family, ranges in HUE_FAMILIES.items():
        inside = np.zeros(len(rgb), dtype=bool)
        for lo, hi in ranges:
            inside |= (hue >= lo) & (hue < hi)
        share[family] = float(vote[inside].sum() / total)
    dominant = max(share, key=share.get) if any(v > 0 for v in share.values()) else None
    return RegionStats(
        pixels=int(len(rgb)), luminance=float(y.mean()), saturation=float(sat.mean()),
        value=float(vmax.mean()), warmth=float(warmth.mean() / max(vmax.mean(), 0.05)),
        hue_share=share, dominant_hue=dominant)


def _hue_degrees(r: np.ndarray, g: np.ndarray, b: np.ndarray, vmax: np.ndarray,
                 chroma: np.ndarray) -> np.ndarray:
    """HSV hue in [0, 360) (0 for gray pixels)."""
    c = np.maximum(chroma, 1e-12)
    h = np.where(vmax == r, ((g - b) / c) % 6.0,
                 np.where(vmax == g, (b - r) / c + 2.0, (r - g) / c + 4.0))
    return np.where(chroma > 0, h * 60.0, 0.0) % 360.0
