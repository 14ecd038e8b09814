"""SPL studio: the Streamlit app (run ``spl app`` or ``streamlit run apps/studio.py``).

The page is built from the installed plug-ins and the pydantic config, so a
third-party loss term, backbone or mask extractor shows up without changes here.
"""

from __future__ import annotations

import streamlit as st

from spl_apps import controls, edit_page, harmonize_page, layout, resources, settings

PAGES = {"Edit": edit_page.render, "Harmonize": harmonize_page.render}


def main() -> None:
    """Lay out the sidebar settings and the chosen page."""
    st.set_page_config(page_title="SPL studio", page_icon="🎨", layout="wide")
    layout.compact()
    plugins = resources.plugins()
    controls.ensure_state()
    page = st.sidebar.radio("Page", list(PAGES), key="page", horizontal=True)
    for message in plugins.load_errors:
        st.sidebar.warning(message)
    settings.sidebar(plugins)
    PAGES[page](plugins)


main()
