"""Page-wide layout: less empty space above the title, so the source and the result fit one screen."""

from __future__ import annotations

import streamlit as st

# Streamlit pads the page top by 6rem; 2rem keeps the title clear of the toolbar
# and an image given a pixel width never grows past its column (source and result share a row)
_CSS = ("<style>[data-testid='stMainBlockContainer']{padding-top:2.5rem;padding-bottom:3rem}"
        "[data-testid='stImageContainer']{max-width:100%}</style>")


def compact() -> None:
    """Apply the studio's page CSS (call once per run, before the page)."""
    st.markdown(_CSS, unsafe_allow_html=True)
