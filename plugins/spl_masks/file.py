"""The 'file' mask extractor: a user's mask image (file, or drawn/uploaded in the app)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from spl_sdk.components import MaskContext, MaskExtractor
from spl_sdk.errors import ConfigError
from spl_sdk.imageio import load_mask


def alpha_of(img: Image.Image) -> Image.Image | None:
    """The image's alpha channel as mode "L", or None when it has none or it is fully opaque."""
    if (img.mode == "P" and "transparency" in img.info) or img.mode in ("PA", "La", "RGBa"):
        img = img.convert("RGBA")
    if "A" not in img.getbands():
        return None
    alpha = img.getchannel("A")
    return alpha if alpha.getextrema()[0] < 255 else None


def mask_image(img: Image.Image) -> Image.Image:
    """Mode "L" mask of a PIL image: its alpha when it has a non-opaque one, else its luminance."""
    alpha = alpha_of(img)
    if alpha is not None:
        return alpha
    return img.convert("L") if img.mode != "L" else img


def read_mask_file(path: str | Path, size: tuple[int, int]) -> Image.Image:
    """Mode "L" mask of a file resized to ``size`` = (W, H); unreadable files raise ImageError."""
    try:
        with Image.open(path) as img:
            alpha = alpha_of(ImageOps.exif_transpose(img))
    except Exception:  # let the core loader report why the file cannot be read
        alpha = None
    if alpha is None:
        return load_mask(path, size=size)  # gray, RGB or 16-bit luminance; ImageError on bad files
    return alpha.resize(size, Image.Resampling.BILINEAR) if alpha.size != size else alpha


def to_tensor(mask: Image.Image, like: torch.Tensor) -> torch.Tensor:
    """(1, 1, H, W) float32 in [0, 1] on the device of ``like``."""
    a = np.asarray(mask, dtype=np.float32) / 255.0
    return torch.from_numpy(a)[None, None].to(like.device)


class FileMask(MaskExtractor):
    """A user mask image (white or opaque = inside), any size, resized to the photo."""

    name = "file"
    needs_first_pass = False

    def extract(self, context: MaskContext) -> torch.Tensor:
        """The drawn mask in ``context.extra['mask']`` if given, else the file ``mask_file``."""
        height, width = context.source_image.shape[-2:]
        size = (int(width), int(height))
        drawn = context.extra.get("mask")
        if drawn is not None:
            img = mask_image(drawn)
            img = img.resize(size, Image.Resampling.BILINEAR) if img.size != size else img
        elif self.config.mask_file is not None:
            img = read_mask_file(self.config.mask_file, size)
        else:
            raise ConfigError("the 'file' mask extractor needs a mask image: set mask_file "
                              "(--mask-file PATH) or draw one in the app.")
        return to_tensor(img, context.source_image)
