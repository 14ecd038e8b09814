"""SPL studio: the Streamlit app (run ``spl app`` or ``streamlit run apps/studio.py``).

The page is built from the installed plug-ins and the pydantic config, so a
third-party loss term, backbone or mask extractor shows up without changes here.
"""

from __future__ import annotations

import streamlit as st

from spl_apps import controls, edit_page, harmonize_page, layout, refine_page, resources, settings

KEPT = ("opt.", "refine.cfg.")  # widget values of one page that other pages do not draw
PAGES = {"Edit": edit_page.render, "Harmonize": harmonize_page.render, "Refine": refine_page.render}


def main() -> None:
    """Lay out the sidebar settings and the chosen page."""
    st.set_page_config(page_title="SPL studio", page_icon="🎨", layout="wide")
    layout.compact()
    plugins = resources.plugins()
    controls.ensure_state()
    for k in [k for k in st.session_state if str(k).startswith(KEPT)]:
        st.session_state[k] = st.session_state[k]  # kept while another page hides their widgets
    page = st.sidebar.radio("Page", list(PAGES), key="page", horizontal=True)
    for message in plugins.load_errors:
        st.sidebar.warning(message)
    if page != "Refine":  # the refine page draws its own settings (no model, no sampling)
        settings.sidebar(plugins)
    PAGES[page](plugins)


main()
