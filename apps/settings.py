"""Where the config widgets go: model and sampler settings in the sidebar, losses and mask on the page."""

from __future__ import annotations

import random

import streamlit as st

from spl_apps import option_controls
from spl_apps.controls import bounds, key, loss_toggle, widget
from spl_sdk.plugins import Plugins

SIDEBAR_GROUPS: dict[str, tuple[str, ...]] = {
    "Model": ("backbone", "model", "device", "dtype", "cpu_offload", "working_size"),
    "Sampling": ("method", "profile", "steps", "source_guidance", "target_guidance", "seed"),
    "Attention control": ("attention",),  # its settings are the controller's options
    "Optimization": ("iterations", "solver", "opt_start", "post_process", "post_processors", "align"),
}
LOSS_GROUPS = {"structure_loss": ("structure_weight", "structure_area"),
               "color_loss": ("color_weight", "color_area")}


def _random_seed() -> None:
    ge, le, _ = bounds("seed")
    st.session_state[key("seed")] = random.randint(int(ge), int(le))


def sidebar(plugins: Plugins) -> None:
    """Model, sampling, attention and optimization settings, one expander each."""
    with st.sidebar:
        st.subheader("Settings")
        for title, names in SIDEBAR_GROUPS.items():
            with st.expander(title, expanded=title == "Model"):
                if title == "Attention control" and not option_controls.uses_attention(plugins):
                    st.caption(f"The method '{option_controls.method_in_use(plugins)}' uses no "
                               f"attention control; these settings do not apply to it.")
                    continue
                for name in names:
                    widget(name, plugins)
                if title == "Sampling":
                    st.button("Random seed", key="seed.random", on_click=_random_seed,
                              help="Draw a new seed; the edit stays reproducible with the seed shown.")
        option_controls.sidebar_section(plugins)
        st.checkbox("Live preview", key="run.previews", value=False,
                    help="Decode the intermediate result at every step (a little slower).")


def preservation(plugins: Plugins) -> bool:
    """The "Preserve structure"/"Preserve color" switches and the edit area; True when a masked area is chosen."""
    masked = False
    for column, (loss, (weight, area)) in zip(st.columns(2), LOSS_GROUPS.items(), strict=True):
        with column:
            on = loss_toggle(loss, plugins)
            widget(weight, plugins, disabled=not on)
            chosen = widget(area, plugins, disabled=not on)
            masked = masked or (on and chosen == "masked")
    # where the edit applies: a masked edit keeps the photo's pixels outside the mask exactly
    return widget("edit_area", plugins) == "masked" or masked


def mask_words(plugins: Plugins) -> None:
    """Mask extractor and its options (mask words, thresholds and inverts per prompt)."""
    name = widget("mask_extractor", plugins)
    if name in plugins.registry.get("mask-extractor", {}):
        option_controls.component_widgets(plugins, "mask-extractor", name)

