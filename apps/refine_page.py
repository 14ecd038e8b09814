"""The Refine page: a photo and any edit of it in, the photo's structure put back (``spl_sdk.refine``)."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st
from PIL import Image

from spl_apps import compare, controls, photo, results, runner
from spl_apps.wording import for_studio
from spl_sdk.config import RefineConfig
from spl_sdk.errors import SplError
from spl_sdk.imageio import save_image
from spl_sdk.plugins import Plugins

SLOT = "refine"
EDITED = "refine_edit"  # the photo slot of the edited image
PREFIX = "refine.cfg."
OFF = "(off)"
LOSSES = {"structure_loss": ("structure_weight", "Structure loss"),
          "color_loss": ("color_weight", "Color loss")}
SETTINGS = ("align", "iterations", "solver", "post_processors")
LABELS = {"align": "Align the edit first", "iterations": "Iterations", "solver": "Solver",
          "post_processors": "Post-processors (in order)"}


@dataclass
class Refined:
    """What the page shows after a refine; kept in session state across reruns."""

    source: Image.Image
    edited: Image.Image  # the edit on the source's grid (aligned), the "before"
    image: Image.Image
    png: bytes
    metadata: dict[str, Any]
    inputs: tuple[int, int]  # ids of the source and edit Photo objects it was made from


def _field(name: str) -> Any:
    return RefineConfig.model_fields[name]


def _default(name: str) -> Any:
    return _field(name).get_default(call_default_factory=True)


def settings_panel(plugins: Plugins) -> None:
    """The refine settings, generated from RefineConfig: losses and weights, align, optimizer."""
    with st.sidebar:
        st.subheader("Refine settings")
        losses = [OFF, *plugins.names("loss")]
        for loss, (weight, label) in LOSSES.items():
            k = PREFIX + loss
            st.session_state.setdefault(k, _default(loss) or OFF)
            chosen = st.selectbox(label, losses, key=k, help=_field(loss).description)
            default = controls.loss_default_weight(plugins, None if chosen == OFF else chosen)
            st.number_input("Weight", min_value=0.0, max_value=float(controls.field_bounds(_field(weight))[1]),
                            value=None, step=max((default or 1000.0) / 10, 1e-6), format="%g",
                            key=PREFIX + weight, disabled=chosen == OFF,
                            placeholder=f"{default:g} ({chosen}'s default)" if default else None,
                            help=_field(weight).description)
        for name in SETTINGS:
            k = PREFIX + name
            if name == "post_processors":
                st.session_state.setdefault(k, list(_default(name)))
                st.multiselect(LABELS[name], plugins.names("post-processor"), key=k,
                               help=_field(name).description, placeholder="none")
                continue
            st.session_state.setdefault(k, _default(name))
            controls.field_widget(LABELS[name], _field(name), st, key=k, help=_field(name).description)


def config_from_state() -> RefineConfig:
    """A validated RefineConfig from the page's widgets (unset values stay unset)."""
    data: dict[str, Any] = {}
    for loss, (weight, _) in LOSSES.items():
        chosen = st.session_state.get(PREFIX + loss, OFF)
        data[loss] = None if chosen == OFF else chosen
        data[weight] = st.session_state.get(PREFIX + weight)
    for name in SETTINGS:
        data[name] = st.session_state.get(PREFIX + name, _default(name))
    return controls.validated(RefineConfig, data)


def render(plugins: Plugins) -> None:
    """Source and edit uploads, align mode and Run on top; before/after side by side; compare below."""
    st.title("Refine an edit")
    settings_panel(plugins)
    running = runner.take_request(SLOT)
    upload_source, upload_edit, go = st.columns([5, 5, 2], vertical_alignment="bottom")
    with upload_source:
        source = photo.uploader(SLOT, "Source photo")
    with upload_edit:
        edited = photo.uploader(EDITED, "Edited version (from any editor)")
    runner.run_button(SLOT, running, disabled=source is None or edited is None, container=go)
    kept: Refined | None = st.session_state.get(f"{SLOT}.result")
    if kept is not None and (edited is None or kept.inputs != (id(source), id(edited))):
        st.session_state.pop(f"{SLOT}.result")  # the result of other inputs goes
        kept = None
    left, middle, right = st.columns(3)
    if source is not None:
        results.stage_image(source.image, f"Source: {source.name}", left)
    if edited is not None:
        results.stage_image(edited.image, f"Edited: {edited.name}", middle)
    with right:
        runner.show_notice(SLOT)
        if running:  # ends with a rerun that draws the result (or the error) with Run enabled
            _run(plugins, source, edited)
        if kept is not None:
            results.stage_image(kept.image, "Refined", right)
        else:
            results.placeholder("Upload the source photo and its edit, then press Run.", right)
    if kept is not None:
        _details(kept)


def _run(plugins: Plugins, source: photo.Photo | None, edited: photo.Photo | None) -> None:
    """Refine through ``spl_sdk.refine`` (the recipe every entry point uses) with a progress bar."""
    from spl_sdk.refiner import refine

    if source is None or edited is None:
        runner.notify(SLOT, "warning", "Upload the source photo and its edited version first.")
        st.rerun()
    bar = st.progress(0.0, text="Aligning the edit…")

    def on_step(done: int, total: int, loss: float | None) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=runner.phase_text("refine", done, total))

    try:
        cfg = config_from_state()
        result = refine(source.image, edited.image, config=cfg, plugins=plugins, on_step=on_step)
    except SplError as exc:
        runner.notify(SLOT, "error", for_studio(str(exc), LABELS))
        st.rerun()
    metadata = result.metadata() | {"source": source.name, "edited": edited.name}
    st.session_state[f"{SLOT}.result"] = Refined(source.image, result.aligned, result.image,
                                                 _png(result.image, metadata), metadata,
                                                 (id(source), id(edited)))
    st.session_state.pop(f"{SLOT}.notice", None)
    st.rerun()


def _png(image: Image.Image, metadata: dict[str, Any]) -> bytes:
    with tempfile.TemporaryDirectory(prefix="spl-download-") as tmp:
        return save_image(image, Path(tmp) / "refined.png", metadata=metadata).read_bytes()


def _details(kept: Refined) -> None:
    """Download, the before/after comparison at full size, and the run's record."""
    st.subheader("Compare")
    left, right = st.columns([3, 2], vertical_alignment="center")
    before = left.radio("Before", ["The edit (aligned)", "The source"], horizontal=True,
                        key=f"{SLOT}.before")
    right.download_button("Download PNG (settings embedded)", data=kept.png, file_name="spl-refined.png",
                          mime="image/png", key=f"{SLOT}.download", on_click="ignore", type="primary",
                          width="stretch")
    compare.show(kept.edited if before.startswith("The edit") else kept.source, kept.image,
                 key=f"{SLOT}.compare")
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in kept.metadata.get("timings", {}).items())
    st.caption(f"Loss {kept.metadata['loss_before']:.4g} → {kept.metadata['loss_after']:.4g}; {timings}")
    with st.expander("Settings of this run"):
        st.code(json.dumps(kept.metadata, indent=2, default=str), language="json")
