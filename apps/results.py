"""The result panel: output, mask, before/after comparison and the PNG download."""

from __future__ import annotations

import json

import streamlit as st
from spl_apps import compare
from spl_apps.runner import RunOutput


def show(out: RunOutput, slot: str, file_name: str = "spl-edit.png") -> None:
    """Draw the kept result of ``slot``: images, comparison, download and the run's settings."""
    st.subheader("Result")
    columns = st.columns(3 if out.mask is not None else 2)
    columns[0].image(out.source, caption="Before", width="stretch")
    columns[1].image(out.image, caption="After", width="stretch")
    if out.mask is not None:
        columns[2].image(out.mask, caption="Mask used (white = masked area)", width="stretch")
    compare.show(out.source, out.image, key=f"{slot}.compare")
    st.download_button("Download PNG (settings embedded)", data=out.png, file_name=file_name,
                       mime="image/png", key=f"{slot}.download", on_click="ignore", type="primary",
                       help="The PNG's 'spl_sdk' text chunk holds the prompts and the full configuration.")
    seconds = ", ".join(f"{k} {v:.1f} s" for k, v in out.timings.items())
    st.caption(f"Timings: {seconds}")
    with st.expander("Settings of this run"):
        st.code(json.dumps(out.metadata, indent=2, default=str), language="json")
