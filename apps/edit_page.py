"""The Edit page: a photo, two prompts, the preservation and mask settings, Run, and the result."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, NoReturn

import streamlit as st
from PIL import Image

from spl_apps import (
    controls,
    mask_input,
    option_controls,
    photo,
    resources,
    results,
    runner,
    settings,
)
from spl_apps.examples import EXAMPLES, by_key
from spl_apps.wording import for_studio
from spl_sdk.errors import ConfigError, ImageError, SplError
from spl_sdk.plugins import Plugins

SLOT = "edit"
SOURCE_PROMPT, TARGET_PROMPT = f"{SLOT}.source_prompt", f"{SLOT}.target_prompt"


def load_example(example_key: str) -> None:
    """One click: the example's photo, prompts and settings (everything else back to defaults)."""
    example = by_key(example_key)
    try:
        photo.set_from_file(SLOT, example.path)
    except ImageError as exc:
        st.session_state[f"{SLOT}.photo_error"] = str(exc)
        return
    st.session_state[SOURCE_PROMPT] = example.source_prompt
    st.session_state[TARGET_PROMPT] = example.target_prompt
    keep = {n: controls.from_widget(n, st.session_state[controls.key(n)])
            for n in settings.SIDEBAR_GROUPS["Model"]}  # a chosen model stays chosen
    fields = dict(example.settings)
    options = fields.pop("options", {})
    controls.reset_state({**keep, **fields})
    option_controls.reset_state()
    option_controls.set_values(resources.plugins(), options)
    st.session_state[f"{SLOT}.mask_source"] = mask_input.WORDS
    st.session_state.pop(f"{SLOT}.result", None)


def examples_row() -> None:
    """One button per bundled example."""
    for column, example in zip(st.columns(len(EXAMPLES)), EXAMPLES, strict=True):
        column.button(example.title, key=f"example.{example.key}", on_click=load_example,
                      args=(example.key,), width="stretch",
                      help=f"Example ({example.kind.lower()}): one click loads the photo, prompts "
                           f"and settings.")


def render(plugins: Plugins) -> None:
    """Prompts and Run on top, source and result side by side as the center, settings below."""
    st.title("Structure-preserving edit")
    running = runner.take_request(SLOT)
    runner.stopped_notice(SLOT)
    examples_row()
    upload, first, second, go = st.columns([4, 4, 4, 2], vertical_alignment="bottom")
    with upload:
        current = photo.uploader(SLOT, "Photo")
    if _reads_source_prompt(_chosen_components()):
        first.text_input("Source prompt (describes the photo)", key=SOURCE_PROMPT,
                         placeholder="a grayscale photo of an old man")
        second.text_input("Target prompt (describes the result)", key=TARGET_PROMPT,
                          placeholder="a colorful photo of an old man")
    else:  # an instruction method: one box, the instruction
        first.caption("This edit method follows an instruction alone: no source prompt is needed.")
        second.text_input("Instruction (what to change)", key=TARGET_PROMPT, placeholder="make it night")
    runner.run_button(SLOT, running, container=go)
    source_col, result_col = st.columns(2)
    with source_col:
        if current is not None:
            results.stage_image(current.image, f"Source: {current.name} "
                                               f"({current.image.width}×{current.image.height})")
        else:
            results.placeholder("Upload a photo or pick an example: it shows here, the result beside it.")
    st.subheader("Preservation")
    masked = settings.preservation(plugins)
    mask = None
    if masked:
        with st.container(border=True):
            source = mask_input.choose_source(SLOT)
            if source == mask_input.WORDS:
                settings.mask_words(plugins)
            else:
                mask = mask_input.user_mask(SLOT, source, current.image if current else None)
    kept = st.session_state.get(f"{SLOT}.result")
    with result_col:
        runner.show_notice(SLOT)
        runner.missing_model_offer(SLOT)
        if running:  # ends with a rerun that draws the result (or the error) with Run enabled
            _run(current, mask, masked, option_controls.options_from_state(plugins))
        if kept is not None:
            for note in kept.notes:
                st.warning(note)
            results.stage_image(kept.image, "Result")
        elif current is not None:
            results.placeholder("Type both prompts and press Run: the result appears here.")
    if kept is not None:
        with st.container(key=f"{SLOT}.details"):
            st.subheader("Compare")
            results.details(kept, SLOT)


def _chosen_components() -> SimpleNamespace:
    """The backbone and method chosen in the sidebar (method None: the backbone's default)."""
    state = st.session_state
    chosen = {name: controls.from_widget(name, state[controls.key(name)])
              for name in ("backbone", "method") if controls.key(name) in state}
    backbone = chosen.get("backbone") or controls.field("backbone").get_default()
    return SimpleNamespace(backbone=backbone, method=chosen.get("method"))


def _reads_source_prompt(cfg: Any) -> bool:
    """False when the edit method (the backbone's default if unset) edits from the instruction alone."""
    from spl_apps import resources

    plugins = resources.plugins()
    try:
        method = cfg.method or plugins.backbone(cfg.backbone).default_method
        return bool(plugins.edit_method(method).uses_source_prompt)
    except SplError:  # an unknown name is reported by the run itself
        return True


def _run(current: photo.Photo | None, mask: Image.Image | None, masked: bool,
         options: dict[str, dict]) -> None:
    source_prompt = st.session_state.get(SOURCE_PROMPT, "").strip()
    target_prompt = st.session_state.get(TARGET_PROMPT, "").strip()
    if current is None:
        _stop("warning", "Upload a photo or load an example first.")
    try:
        cfg = controls.config_from_state(options=options)
    except ConfigError as exc:
        _stop("error", for_studio(str(exc)))
    if not target_prompt or (not source_prompt and _reads_source_prompt(cfg)):
        _stop("warning", "Type both prompts: the source describes the photo, the target the result "
                         "(an instruction-edit backbone needs only the target: the instruction).")
    if masked and st.session_state.get(f"{SLOT}.mask_source") != mask_input.WORDS and mask is None:
        _stop("warning", "A masked area is chosen: upload or draw a mask, or pick 'Prompt words'.")
    runner.run(SLOT, cfg, current.image, source_prompt, target_prompt, mask=mask)


def _stop(kind: str, text: str) -> NoReturn:
    """Keep the message (until the input changes) and redraw the page with Run enabled."""
    runner.notify(SLOT, kind, text)
    st.rerun()
