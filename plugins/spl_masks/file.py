"""The 'file' mask extractor: a user's mask image (file, or drawn/uploaded in the app)."""

from __future__ import annotations

from PIL import Image

from spl_sdk.components import MaskContext, MaskExtractor
from spl_sdk.errors import ConfigError
from spl_sdk.imageio import load_mask, mask_image
from spl_sdk.lazy import numpy as np
from spl_sdk.lazy import torch


def to_tensor(mask: Image.Image, like: torch.Tensor) -> torch.Tensor:
    """(1, 1, H, W) float32 in [0, 1] on the device of ``like``."""
    a = np.asarray(mask, dtype=np.float32) / 255.0
    return torch.from_numpy(a)[None, None].to(like.device)


class FileMask(MaskExtractor):
    """A user mask image (white or opaque = inside), any size, resized to the photo."""

    name = "file"
    needs_first_pass = False

    def check(self, context: MaskContext) -> None:
        """Refuse, before any work, an edit that gives no mask at all."""
        if context.extra.get("mask") is None and self.mask_file is None:
            raise ConfigError("the 'file' mask extractor needs a mask image: pass --mask FILE to "
                              "spl edit, mask= or mask_file= to Editor.edit, or draw one in the app.")

    def extract(self, context: MaskContext) -> torch.Tensor:
        """The drawn mask in ``context.extra['mask']`` if given, else the file ``mask_file``."""
        self.check(context)
        height, width = context.source_image.shape[-2:]
        size = (int(width), int(height))
        drawn = context.extra.get("mask")
        if drawn is not None:
            img = mask_image(drawn)
            img = img.resize(size, Image.Resampling.BILINEAR) if img.size != size else img
        else:
            img = load_mask(self.mask_file, size)
        return to_tensor(img, context.source_image)
