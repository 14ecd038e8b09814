"""The Harmonize page: composite + mask in, prompts from a harmonizer plug-in, then the edit (docs/method.md §6)."""

from __future__ import annotations

import os
from typing import Any

import streamlit as st
from PIL import Image

from spl_apps import controls, option_controls, photo, results, runner
from spl_apps.uploads import IMAGE_TYPES, MAX_UPLOAD_MB, read_fitted_mask
from spl_apps.wording import for_studio
from spl_sdk.errors import ConfigError, ImageError, SplError
from spl_sdk.extras import available
from spl_sdk.harmonize import EDIT_SETTINGS
from spl_sdk.harmonizing import HarmonizerChoice, harmonization_record
from spl_sdk.plugins import Plugins

SLOT = "harm"
SOURCE_PROMPT, TARGET_PROMPT = f"{SLOT}.source_prompt", f"{SLOT}.target_prompt"


def _mask(composite: photo.Photo | None) -> Image.Image | None:
    upload = st.file_uploader("Foreground mask (white = pasted object)", type=IMAGE_TYPES,
                              key=f"{SLOT}.mask_upload", max_upload_size=MAX_UPLOAD_MB)
    if upload is None or composite is None:
        return None
    try:
        mask, notes = read_fitted_mask(upload.name, upload.getvalue(), composite.image.size)
    except ImageError as exc:
        st.error(str(exc))
        return None
    for note in notes:
        st.warning(note)
    return mask


def _harmonizer_choice(plugins: Plugins) -> str | None:
    names = plugins.names("harmonizer")
    if not names:
        st.error("No harmonizer plug-in is installed; install spl-sdk's built-ins or type the prompts.")
        return None
    if f"{SLOT}.harmonizer" not in st.session_state:
        # the offline harmonizer needs no key: prefer it unless an OpenAI key (and client) is there
        wanted = "openai" if os.environ.get("OPENAI_API_KEY") and available("openai") else "offline"
        st.session_state[f"{SLOT}.harmonizer"] = wanted if wanted in names else names[0]
    return st.selectbox("Harmonizer", names, key=f"{SLOT}.harmonizer",
                        format_func=lambda n: f"{n} — {plugins.info('harmonizer', n).summary}")


def _options(plugins: Plugins, name: str | None) -> dict[str, Any]:
    """Widgets generated from the chosen harmonizer's Options; the values that differ from defaults."""
    if name is None or not plugins.harmonizer(name).Options.model_fields:
        return {}
    with st.expander("Harmonizer options"):
        option_controls.component_widgets(plugins, "harmonizer", name)
    return option_controls.values(plugins, "harmonizer", name)


def _describe(plugins: Plugins, name: str, composite: Image.Image, mask: Image.Image,
              object_word: str, options: dict[str, Any]) -> None:
    choice = HarmonizerChoice(name, {name: options})  # options may hold a key: kept in memory only
    try:
        with st.spinner(f"Asking the {name} harmonizer…"):
            found = choice.build(plugins).describe(composite, mask, object_word or None)
            public = choice.public(plugins)
    except SplError as exc:
        st.error(str(exc))
        return
    st.session_state[SOURCE_PROMPT] = found.source_prompt
    st.session_state[TARGET_PROMPT] = found.target_prompt
    st.session_state[f"{SLOT}.found"] = found
    st.session_state[f"{SLOT}.found_by"] = public


def render(plugins: Plugins) -> None:
    """Draw the page; "Write prompts" asks the harmonizer, Run harmonizes."""
    st.title("Harmonize a composite")
    st.caption("The object's light and tone move towards the background's; every edge stays put "
               "(SPL on the whole image) and the background keeps its colors (CPL outside the mask).")
    running = runner.take_request(SLOT)
    runner.stopped_notice(SLOT)
    left, right = st.columns([2, 3])
    with left:
        composite = photo.uploader(SLOT, "Composite (object pasted onto a background)")
        mask = _mask(composite)
        if composite is not None:
            pictures = [composite.image] + ([mask] if mask is not None else [])
            st.image(pictures, caption=["Composite", "Mask"][: len(pictures)], width=240)
    with right:
        name = _harmonizer_choice(plugins)
        object_word = st.text_input("Object (optional)", key=f"{SLOT}.object",
                                    placeholder="e.g. cat; the harmonizer names it if empty")
        options = _options(plugins, name)
        ready = composite is not None and mask is not None and name is not None
        if st.button("Write prompts", key=f"{SLOT}.describe", disabled=not ready,
                     help="The harmonizer picks style words for the object and the background."):
            _describe(plugins, name, composite.image, mask, object_word, options)
        found = st.session_state.get(f"{SLOT}.found")
        if found is not None:
            st.caption(f"Object: {found.foreground_object}; foreground: {', '.join(found.foreground_words)}; "
                       f"background: {', '.join(found.background_words)}")
        st.text_input("Source prompt (the object as it looks now)", key=SOURCE_PROMPT)
        st.text_input("Target prompt (the object as it should look here)", key=TARGET_PROMPT)
        for name_ in ("structure_weight", "color_weight"):
            controls.widget(name_, plugins, label=name_.split("_")[0].capitalize() + " weight")
        runner.run_button(SLOT, running, disabled=not ready)
        runner.show_notice(SLOT)
        runner.missing_model_offer(SLOT)
        if running:  # ends with a rerun that draws the result (or the error) with Run enabled
            _run(composite, mask, option_controls.options_from_state(plugins))
        kept = st.session_state.get(f"{SLOT}.result")
        if kept is not None:
            results.stage_image(kept.image, "Harmonized")
    if kept is not None:
        results.details(kept, SLOT, file_name="spl-harmonized.png")


def _run(composite: photo.Photo, mask: Image.Image, options: dict[str, dict]) -> None:
    source_prompt = st.session_state.get(SOURCE_PROMPT, "").strip()
    target_prompt = st.session_state.get(TARGET_PROMPT, "").strip()
    if not source_prompt or not target_prompt:
        runner.notify(SLOT, "warning", "Press 'Write prompts' or type both prompts first.")
        st.rerun()
    try:
        cfg = controls.config_from_state(**EDIT_SETTINGS, options=options)
    except ConfigError as exc:
        runner.notify(SLOT, "error", for_studio(str(exc)))
        st.rerun()
    found = st.session_state.get(f"{SLOT}.found")
    if found is not None and (found.source_prompt, found.target_prompt) != (source_prompt, target_prompt):
        found = None  # prompts typed over the harmonizer's: the record says they were written by hand
    record = harmonization_record(found, st.session_state.get(f"{SLOT}.found_by"))
    # docs/method.md §6 through the one harmonize recipe (SPL on the whole image, CPL on the
    # background); the result shows the mask as uploaded
    runner.run(SLOT, cfg, composite.image, source_prompt, target_prompt, shown_mask=mask,
               mask_caption="Mask as uploaded (white = pasted object)",
               harmonize=runner.Harmonize(mask, record))
