"""The result panel: the result beside its source, full-width comparison, mask and the PNG download."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st
from PIL import Image

from spl_apps import compare
from spl_apps.runner import RunOutput

STAGE_HEIGHT = 520  # px: source and result side by side stay inside a 900 px high window


def stage_width(image: Image.Image) -> int:
    """Display width that keeps ``image`` at most STAGE_HEIGHT px high (the column caps it too)."""
    return max(64, round(STAGE_HEIGHT * image.width / image.height))


def stage_image(image: Image.Image, caption: str, container: Any = st) -> None:
    """One picture of the stage (source or result), as large as the column and the height allow."""
    container.image(image, caption=caption, width=stage_width(image))


def placeholder(text: str, container: Any = st) -> None:
    """The empty result half of the stage, saying what fills it."""
    box = container.container(border=True, height=160, vertical_alignment="center")
    box.caption(text)


def details(out: RunOutput, slot: str, file_name: str = "spl-edit.png") -> None:
    """Under the stage: the run's warnings, download, full-width comparison, mask and settings."""
    for note in out.notes:
        st.warning(note)
    caption = out.metadata.get("caption") or (
        f"“{out.metadata.get('source_prompt', '')}” → “{out.metadata.get('target_prompt', '')}”")
    left, right = st.columns([3, 2], vertical_alignment="center")
    left.caption(caption)
    right.download_button("Download PNG (settings embedded)", data=out.png, file_name=file_name,
                          mime="image/png", key=f"{slot}.download", on_click="ignore", type="primary",
                          width="stretch",
                          help="The PNG's 'spl_sdk' text chunk holds the inputs and the full configuration.")
    compare.show(out.source, out.image, key=f"{slot}.compare")
    if out.mask is not None:
        st.image(out.mask, caption=out.mask_caption, width=min(out.mask.width, 320))
    seconds = ", ".join(f"{k} {v:.1f} s" for k, v in out.timings.items())
    st.caption(f"Timings: {seconds}")
    with st.expander("Settings of this run"):
        st.code(json.dumps(out.metadata, indent=2, default=str), language="json")
