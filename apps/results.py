"""The result panel: output, mask, before/after comparison and the PNG download."""

from __future__ import annotations

import json

import streamlit as st

from spl_apps import compare
from spl_apps.runner import RunOutput


def show(out: RunOutput, slot: str, file_name: str = "spl-edit.png") -> None:
    """Draw the kept result of ``slot``: images, comparison, download and the run's settings."""
    st.subheader("Result")
    for note in out.notes:
        st.warning(note)
    st.caption(f"“{out.metadata.get('source_prompt', '')}” → “{out.metadata.get('target_prompt', '')}”")
    left, right = st.columns(2)
    with left:
        pictures, captions = [out.image], ["After"]
        if out.mask is not None:
            pictures.append(out.mask)
            captions.append(out.mask_caption)
        st.image(pictures, caption=captions, width=min(out.image.width, 320) if out.mask else "stretch")
    with right:
        compare.show(out.source, out.image, key=f"{slot}.compare")
    st.download_button("Download PNG (settings embedded)", data=out.png, file_name=file_name,
                       mime="image/png", key=f"{slot}.download", on_click="ignore", type="primary",
                       help="The PNG's 'spl_sdk' text chunk holds the prompts and the full configuration.")
    seconds = ", ".join(f"{k} {v:.1f} s" for k, v in out.timings.items())
    st.caption(f"Timings: {seconds}")
    with st.expander("Settings of this run"):
        st.code(json.dumps(out.metadata, indent=2, default=str), language="json")
