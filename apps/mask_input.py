"""Where the mask of a masked edit comes from: prompt words, an uploaded mask, or a drawing."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st
from PIL import Image

from spl_apps.uploads import IMAGE_TYPES, MAX_UPLOAD_MB, read_fitted_mask
from spl_sdk.errors import ImageError
from spl_sdk.extras import available, install_hint

WORDS, UPLOAD, DRAW = "Prompt words", "Upload a mask", "Draw"
CANVAS_WIDTH = 512


def canvas() -> Any | None:
    """``st_canvas`` from streamlit-drawable-canvas when installed and usable here, else None."""
    try:
        from streamlit_drawable_canvas import st_canvas
    except Exception:  # not installed, or its frontend is not registered (AppTest, bare mode)
        return None
    return st_canvas


def choose_source(slot: str) -> str:
    """The mask source picker; drawing is offered only when the canvas component works."""
    options = [WORDS, UPLOAD] + ([DRAW] if canvas() is not None else [])
    if not available("streamlit_drawable_canvas"):
        st.caption(install_hint("draw", "Drawing a mask"))
    return st.radio("Mask from", options, horizontal=True, key=f"{slot}.mask_source",
                    help="Prompt words: built from the attention maps of the mask words (docs/method.md §5). "
                         "Upload/Draw: white marks the area where the masked losses apply (and, with a masked "
                         "edit area, the only area that is edited).")


def uploaded_mask(slot: str, size: tuple[int, int]) -> Image.Image | None:
    """A mask upload resized to ``size`` = (W, H); shows a one-sentence error on a bad file."""
    upload = st.file_uploader("Mask image (white = inside)", type=IMAGE_TYPES, key=f"{slot}.mask_upload",
                              max_upload_size=MAX_UPLOAD_MB)
    if upload is None:
        return None
    try:
        mask, notes = read_fitted_mask(upload.name, upload.getvalue(), size)
    except ImageError as exc:
        st.error(str(exc))
        return None
    for note in notes:
        st.warning(note)
    st.image(mask, caption="Mask", width=256)
    return mask


def drawn_mask(slot: str, image: Image.Image) -> Image.Image | None:
    """A mask painted over the photo (white strokes = inside), at the photo's size."""
    st_canvas = canvas()
    if st_canvas is None:
        return None
    width = min(CANVAS_WIDTH, image.width)
    height = round(image.height * width / image.width)
    brush = st.slider("Brush size", 5, 80, 30, key=f"{slot}.brush")
    result = st_canvas(stroke_width=brush, stroke_color="#ffffff", fill_color="rgba(255,255,255,1)",
                       background_image=image.resize((width, height)), width=width, height=height,
                       drawing_mode="freedraw", return_image_data=True, key=f"{slot}.canvas")
    data = getattr(result, "image_data", None)
    if data is None or not np.asarray(data)[..., 3].any():
        st.caption("Paint over the area to edit.")
        return None
    alpha = Image.fromarray(np.asarray(data)[..., 3].astype(np.uint8), "L")
    return alpha.resize(image.size, Image.Resampling.BILINEAR)


def user_mask(slot: str, source: str, image: Image.Image | None) -> Image.Image | None:
    """The user's mask for the chosen source (None for prompt words or when none is given yet)."""
    if source == UPLOAD and image is not None:
        return uploaded_mask(slot, image.size)
    if source == DRAW and image is not None:
        return drawn_mask(slot, image)
    if source in (UPLOAD, DRAW):
        st.caption("Choose a photo first.")
    return None
