"""Uploaded files to PIL images through ``spl_sdk.imageio``, with one-sentence errors."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from spl_sdk.errors import ImageError
from spl_sdk.footprint import MemoryBudgetError, check_fits
from spl_sdk.imageio import load_image, load_mask

MIN_SIDE = 128  # below this the model sees a few latent cells: warn that results will be poor
MAX_UPLOAD_MB = 50  # per file; also passed to st.file_uploader so the browser refuses bigger ones
IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "tif", "tiff"]
# a few hundred KB of PNG can hold 8000x8000 pixels: the pixel count is limited before decoding
DEFAULT_MAX_PIXELS = 4096 * 4096


def max_pixels() -> int:
    """The studio's upload limit in pixels: SPL_STUDIO_MAX_PIXELS, else 4096x4096."""
    try:
        return int(os.environ.get("SPL_STUDIO_MAX_PIXELS", DEFAULT_MAX_PIXELS))
    except ValueError:
        return DEFAULT_MAX_PIXELS


def check_pixels(name: str, data: bytes) -> None:
    """Refuse, from the header alone, an upload over the pixel limit or the machine's memory."""
    try:
        with Image.open(io.BytesIO(data)) as img:  # lazy: reads the size, decodes nothing
            width, height = img.size
    except Exception:  # not an image, or a bomb: the reader names the problem properly
        return
    limit = max_pixels()
    if width * height > limit:
        raise ImageError(f"upload '{name}' is {width}x{height} pixels ({width * height / 1e6:.3g} MP), "
                         f"over this studio's limit of {limit / 1e6:.3g} MP; downscale it first.")
    try:
        check_fits(width, height, "edit it at full size", hint="downscale it first")
    except MemoryBudgetError as exc:
        raise ImageError(f"upload '{name}': {exc}") from None


def _via_file(name: str, data: bytes, reader: Callable[..., Image.Image], **kwargs: Any) -> Image.Image:
    """Run an imageio reader on the bytes (it takes paths), naming the upload in errors."""
    if len(data) > MAX_UPLOAD_MB * 1024 * 1024:
        raise ImageError(f"upload '{name}' is {len(data) / 2**20:.0f} MB, over the "
                         f"{MAX_UPLOAD_MB} MB limit; downscale or compress it first.")
    check_pixels(name, data)
    suffix = Path(name).suffix.lower() or ".png"
    with tempfile.TemporaryDirectory(prefix="spl-upload-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            return reader(path, **kwargs)
        except ImageError as exc:
            # imageio names the temp path; the user knows the file by its own name
            raise ImageError(str(exc).replace(str(path), name)) from None


def read_image(name: str, data: bytes) -> Image.Image:
    """An uploaded photo as RGB (EXIF-transposed), or ImageError saying what is wrong."""
    return _via_file(name, data, load_image)


def photo_warnings(image: Image.Image) -> list[str]:
    """What to tell the user about a photo that loads but will edit poorly (tiny images)."""
    if min(image.size) < MIN_SIDE:
        return [f"The photo is only {image.width}×{image.height} px; below {MIN_SIDE} px the model "
                f"sees too few details and results are poor. Use a larger photo."]
    return []


def read_fitted_mask(name: str, data: bytes, size: tuple[int, int]) -> tuple[Image.Image, list[str]]:
    """An uploaded mask resized to the photo's ``size`` = (W, H), with warnings about its content.

    Warns when the mask is empty (nothing would be masked), full (the whole image
    is masked) or of another aspect ratio than the photo (it gets stretched).
    """
    mask = _via_file(name, data, load_mask)
    notes = []
    ratio, photo_ratio = mask.width / mask.height, size[0] / size[1]
    if abs(ratio - photo_ratio) > 0.02 * photo_ratio:
        notes.append(f"The mask is {mask.width}×{mask.height} but the photo {size[0]}×{size[1]}: "
                     f"another aspect ratio, so the mask is stretched to fit; check it lines up.")
    if mask.size != size:
        mask = mask.resize(size, Image.Resampling.BILINEAR)
    low, high = mask.getextrema()
    if high < 128:
        notes.append("The mask is empty (no white area): the masked losses would apply nowhere.")
    elif low >= 128:
        notes.append("The mask is all white: the whole image is masked, as without a mask.")
    return mask, notes
