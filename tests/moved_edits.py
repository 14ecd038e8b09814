"""Edits that moved, made from the bundled photos with a known warp (tests and benchmarks/align.py).

An edit model's drift is modeled as: the clean edit (a recolor and a blur of the
photo, whose ideal refinement is the recolored photo itself), then moved: content
at source pixel x appears at T(x) + u(x) in the edit, T a similarity (shift, zoom,
rotation about the center) and u a smooth non-rigid displacement of a given
largest size. The uncovered border is reflected, as a model paints something there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "apps" / "examples"
PHOTOS = ("cats.png", "marshmallow.jpg", "old_man.png", "woman.png")


@dataclass(frozen=True)
class Drift:
    """A known misplacement: shift in pixels at 512 px (scaled with the size), zoom, degrees, warp px."""

    shift: tuple[float, float] = (0.0, 0.0)
    zoom: float = 1.0
    rotation: float = 0.0
    bend: float = 0.0  # largest non-rigid displacement, pixels at 512 px


# every case of the issue: shift, zoom 0.97-1.05, rotation up to 1 degree, a smooth warp of 1-2 px
DRIFTS = {
    "shift": Drift(shift=(3.5, -2.25)),
    "zoom-in": Drift(shift=(1.0, 0.5), zoom=1.05),
    "zoom-out": Drift(zoom=0.97, rotation=0.4),
    "rotate": Drift(shift=(-1.5, 2.0), rotation=1.0),
    "bend": Drift(bend=2.0),
    "all": Drift(shift=(2.0, -1.0), zoom=1.02, rotation=-0.7, bend=1.5),
}


def photo(name: str, size: tuple[int, int]) -> Image.Image:
    """A bundled photo, center-cropped to the aspect of ``size`` (W, H) and resized to it."""
    with Image.open(EXAMPLES / name) as img:
        img = img.convert("RGB")
    w, h = img.size
    aspect = size[0] / size[1]
    cw, ch = (min(w, round(h * aspect)), min(h, round(w / aspect)))
    box = ((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)
    return img.crop(box).resize(size, Image.Resampling.LANCZOS)


def recolor(img: Image.Image) -> Image.Image:
    """The ideal edit: warm areas get their red and blue swapped, the rest a tone curve.

    The change depends on the object, as a real edit's does, so an edit that moved
    carries its new colors over the objects' edges: refining it without alignment
    leaves them there (1 to 3 dB worse), while a global recolor would hide that.
    """
    import cv2

    a = np.asarray(img, np.float32) / 255
    warm = cv2.GaussianBlur((a[..., 0] > a[..., 2] + 0.02).astype(np.float32), (0, 0), 1.0)[..., None]
    out = warm * (a[..., ::-1] * 0.9 + 0.05) + (1 - warm) * (a ** 0.8) * 0.9
    return Image.fromarray((out.clip(0, 1) * 255).round().astype(np.uint8))


def blurred(img: Image.Image, sigma: float) -> Image.Image:
    """A Gaussian blur of ``sigma`` pixels (the edit lost detail)."""
    import cv2

    return Image.fromarray(cv2.GaussianBlur(np.asarray(img), (0, 0), sigma))


def moved(img: Image.Image, drift: Drift, size: tuple[int, int] | None = None, seed: int = 0) -> Image.Image:
    """``img`` with its content moved by ``drift`` (content at x goes to T(x) + u(x)), at ``size``."""
    import cv2

    w, h = img.size
    out_w, out_h = size or (w, h)
    unit = max(w, h) / 512  # drifts are given at 512 px
    ys, xs = np.mgrid[0:out_h, 0:out_w].astype(np.float64)
    # output pixel -> position in img's grid (a stretched size is a resize, as models do)
    xs, ys = (xs + 0.5) * w / out_w - 0.5, (ys + 0.5) * h / out_h - 0.5
    cx, cy = (w - 1) / 2, (h - 1) / 2
    rng = np.random.default_rng(seed)
    if drift.bend:
        # a smooth displacement: two long waves per axis, scaled to the largest size asked for
        phase = rng.uniform(0, 2 * math.pi, 4)
        ux = np.sin(2 * math.pi * ys / h + phase[0]) + np.cos(math.pi * xs / w + phase[1])
        uy = np.sin(2 * math.pi * xs / w + phase[2]) + np.cos(math.pi * ys / h + phase[3])
        top = np.hypot(ux, uy).max()
        xs, ys = xs - ux / top * drift.bend * unit, ys - uy / top * drift.bend * unit
    # inverse similarity: edit position q = z R (x - c) + c + s  =>  x = R^-1 (q - c - s) / z + c
    t = math.radians(drift.rotation)
    qx, qy = xs - cx - drift.shift[0] * unit, ys - cy - drift.shift[1] * unit
    sx = (math.cos(t) * qx + math.sin(t) * qy) / drift.zoom + cx
    sy = (-math.sin(t) * qx + math.cos(t) * qy) / drift.zoom + cy
    out = cv2.remap(np.asarray(img), sx.astype(np.float32), sy.astype(np.float32), cv2.INTER_CUBIC,
                    borderMode=cv2.BORDER_REFLECT_101)
    return Image.fromarray(out)


def psnr_interior(a: Image.Image, b: Image.Image, margin: float = 0.06) -> float:
    """PSNR (dB) of two same-size images, leaving out a border of ``margin`` of each side."""
    x, y = (np.asarray(i, np.float64) for i in (a, b))
    h, w = x.shape[:2]
    my, mx = round(h * margin), round(w * margin)
    mse = ((x - y)[my:h - my, mx:w - mx] ** 2).mean()
    return 10 * math.log10(255 ** 2 / max(mse, 1e-12))
