"""The photo a page works on: from an upload or an example, whichever came last."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from PIL import Image

from spl_apps.uploads import IMAGE_TYPES, MAX_UPLOAD_MB, photo_warnings, read_image
from spl_sdk.errors import ImageError
from spl_sdk.imageio import load_image


@dataclass
class Photo:
    """A decoded RGB photo and the name it came with."""

    name: str
    image: Image.Image


def set_from_file(slot: str, path: Path) -> None:
    """Make the file at ``path`` (an example) the photo of ``slot``."""
    st.session_state[f"{slot}.photo"] = Photo(path.name, load_image(path))
    st.session_state.pop(f"{slot}.photo_error", None)
    st.session_state.pop(f"{slot}.result", None)  # the old result belongs to the old photo


def uploader(slot: str, label: str) -> Photo | None:
    """An upload box whose newest file becomes the photo; a bad file gives a one-sentence error."""
    upload = st.file_uploader(label, type=IMAGE_TYPES, key=f"{slot}.upload",
                              max_upload_size=MAX_UPLOAD_MB,
                              help=f"PNG, JPEG, WebP or TIFF, at most {MAX_UPLOAD_MB} MB.")
    # only a file not seen before replaces the photo, so a loaded example stays until a new upload
    seen = (upload.file_id, upload.name, upload.size) if upload is not None else None
    if seen is not None and st.session_state.get(f"{slot}.upload_seen") != seen:
        st.session_state[f"{slot}.upload_seen"] = seen
        st.session_state.pop(f"{slot}.result", None)  # new or failed upload: the old result goes
        try:
            st.session_state[f"{slot}.photo"] = Photo(upload.name, read_image(upload.name, upload.getvalue()))
            st.session_state.pop(f"{slot}.photo_error", None)
        except ImageError as exc:
            st.session_state.pop(f"{slot}.photo", None)
            st.session_state[f"{slot}.photo_error"] = str(exc)
    if f"{slot}.photo_error" in st.session_state:
        st.error(st.session_state[f"{slot}.photo_error"])
    if current(slot) is not None:
        for note in photo_warnings(current(slot).image):
            st.warning(note)
    return current(slot)


def current(slot: str) -> Photo | None:
    """The photo of ``slot``, if any."""
    return st.session_state.get(f"{slot}.photo")
