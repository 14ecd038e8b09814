"""Running an edit from the app: progress bar, cancel, model errors, and the kept result.

Canceling relies on Streamlit itself: any click while the script runs (the
Cancel button or any widget) makes Streamlit stop the running script at its
next call into Streamlit, which the progress callback makes every step. The
``<slot>.pending`` flag is set before the edit and cleared only when it ends,
so the next run can tell the user the edit was stopped; the loaded model is
untouched (the editor restores its attention processors in a ``finally``).
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st
from PIL import Image

from spl_apps import resources
from spl_apps.controls import key
from spl_apps.wording import for_studio
from spl_sdk.config import EditConfig
from spl_sdk.editor import EditResult
from spl_sdk.errors import ModelNotFoundError, SplError, SplWarning
from spl_sdk.harmonizing import harmonize_edit
from spl_sdk.imageio import save_image

FALLBACK_BACKBONE = "tiny-random-sd15"
# the editor's progress phases (spl_sdk.editor._Progress) as the studio names them
PHASE_LABELS = {"mask pass": "Finding the mask", "steps": "Denoising", "injection": "Loss steps",
                "post-processing": "Refining at full size", "refine": "Refining"}
# per-page widgets (key "<slot>.<name>") whose change makes an old message stale
INPUT_NAMES = {"source_prompt", "target_prompt", "mask_source", "mask_upload", "upload", "canvas",
               "object", "harmonizer", "folder"}


@dataclass
class Harmonize:
    """A harmonize run: the foreground mask (white = pasted object) and what its metadata records."""

    foreground: Image.Image
    record: dict[str, Any] = field(default_factory=dict)  # spl_sdk.harmonizing.harmonization_record


@dataclass
class RunOutput:
    """What the page shows after an edit; kept in session state across reruns."""

    source: Image.Image
    image: Image.Image
    mask: Image.Image | None
    png: bytes
    metadata: dict[str, Any]
    timings: dict[str, float]
    mask_caption: str = "Mask used (white = masked area)"
    notes: list[str] = field(default_factory=list)  # the run's warnings for the user (an empty mask, ...)


def png_with_metadata(image: Image.Image, metadata: dict[str, Any]) -> bytes:
    """PNG bytes carrying the run's metadata in the "spl_sdk" text chunk (via imageio.save_image)."""
    with tempfile.TemporaryDirectory(prefix="spl-download-") as tmp:
        return save_image(image, Path(tmp) / "edit.png", metadata=metadata).read_bytes()


def _use_tiny(slot: str) -> None:
    st.session_state[key("backbone")] = FALLBACK_BACKBONE
    st.session_state[key("model")] = ""
    st.session_state.pop(f"{slot}.missing", None)


def _use_folder(slot: str) -> None:
    st.session_state[key("model")] = st.session_state.get(f"{slot}.folder", "").strip()
    st.session_state.pop(f"{slot}.missing", None)


def _model_choice() -> tuple[str, str]:
    return st.session_state.get(key("backbone"), ""), st.session_state.get(key("model"), "")


def missing_model_offer(slot: str) -> None:
    """After a run found no weights: the one-sentence reason, and tiny-random-sd15 or a local folder.

    Shown on every rerun (typing the folder reruns the page) until the model choice changes.
    """
    missing = st.session_state.get(f"{slot}.missing")
    if missing is None or missing[0] != _model_choice():
        return
    st.error(missing[1])
    left, right = st.columns(2)
    left.button(f"Use {FALLBACK_BACKBONE} (random weights, tries the app)", key=f"{slot}.use_tiny",
                on_click=_use_tiny, args=(slot,))
    if not resources.model_folders_allowed():  # a served studio: no paths on the server's disk
        return
    folder = right.text_input("…or a local folder with the model's weights", key=f"{slot}.folder",
                              placeholder="/path/to/model (diffusers format)")
    right.button("Use this folder", key=f"{slot}.use_folder", disabled=not folder.strip(),
                 on_click=_use_folder, args=(slot,))


def stopped_notice(slot: str) -> None:
    """Tell the user when the previous run of this page was stopped before it finished."""
    if st.session_state.pop(f"{slot}.pending", False):
        st.info("The edit was stopped before it finished; your settings are kept, press Run to "
                "start again.")


# ------------------------------------------------------------------ Run button and messages
def _request(slot: str) -> None:
    st.session_state[f"{slot}.requested"] = True


def take_request(slot: str) -> bool:
    """True once after Run was pressed: the page then runs, with the Run button disabled."""
    return bool(st.session_state.pop(f"{slot}.requested", False))


def run_button(slot: str, running: bool, disabled: bool = False, container: Any = st) -> None:
    """The Run button; disabled while this page's run is going (the run ends with a rerun)."""
    container.button("Run", key=f"{slot}.run", type="primary", on_click=_request, args=(slot,),
                     disabled=running or disabled, width="stretch",
                     help="Running… (Cancel stops it)" if running else None)


def inputs(slot: str) -> str:
    """A fingerprint of everything the user can change for ``slot``: a message older than it is stale."""
    state = st.session_state
    keys = sorted(k for k in state if isinstance(k, str) and (
        k.startswith(("cfg.", "opt.")) or k.removeprefix(f"{slot}.") in INPUT_NAMES))
    values = [(k, getattr(state[k], "file_id", state[k])) for k in keys]  # an upload by its id
    return repr(values + [id(state.get(f"{slot}.photo")), id(state.get(f"{slot}_edit.photo"))])


def notify(slot: str, kind: str, text: str) -> None:
    """Keep a message ("error", "warning") for ``slot`` until the inputs change."""
    st.session_state[f"{slot}.notice"] = (kind, text, inputs(slot))


def show_notice(slot: str) -> None:
    """Draw the kept message, unless the inputs changed since (then it is stale and goes)."""
    notice = st.session_state.get(f"{slot}.notice")
    if notice is None:
        return
    kind, text, fingerprint = notice
    if fingerprint != inputs(slot):
        del st.session_state[f"{slot}.notice"]
        return
    getattr(st, kind)(text)


def phase_text(phase: str, done: int, total: int) -> str:
    """A progress phase of the editor in the studio's words: "Denoising 3/15", "Refining 40/100"."""
    base, _, name = phase.partition(" ") if phase.startswith("post-processing ") else (phase, "", "")
    label = PHASE_LABELS.get(base, phase.capitalize())
    return f"{label}{f' ({name})' if name else ''} {done}/{total}"


def run(slot: str, cfg: EditConfig, image: Image.Image, source_prompt: str, target_prompt: str,
        mask: Image.Image | None = None, *, shown_mask: Image.Image | None = None,
        mask_caption: str | None = None, harmonize: Harmonize | None = None) -> None:
    """Run one edit with a live progress bar, keep it as ``<slot>.result``, then rerun the page.

    The rerun draws the page afresh with the Run button enabled again; errors are
    kept (``notify``) so that they survive it. ``shown_mask`` replaces the mask the
    result shows (the harmonizer shows the mask as uploaded, not its inverse).
    ``harmonize`` runs the harmonize recipe (spl_sdk.harmonizing) instead of a plain edit.
    """
    bar = st.progress(0.0, text=f"Loading the model ({cfg.backbone})…")
    cancel = st.empty()
    cancel.button("Cancel", key=f"{slot}.cancel", help="Stop the edit; settings and the last result are kept.")
    preview = st.empty()
    st.session_state[f"{slot}.pending"] = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SplWarning)
        try:
            result = _edit(bar, preview, cfg, image, source_prompt, target_prompt, mask, harmonize)
        except Exception as exc:
            result = exc
    notes = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, SplWarning)))
    # reached only when the edit ended by itself: a cancel unwinds past this point
    st.session_state[f"{slot}.pending"] = False
    st.session_state.pop(f"{slot}.missing", None)
    if isinstance(result, ModelNotFoundError):
        st.session_state[f"{slot}.missing"] = (_model_choice(), for_studio(str(result)))
    elif isinstance(result, SplError):
        notify(slot, "error", for_studio(str(result)))
    elif isinstance(result, Exception):  # a plug-in bug: say so without taking the page down
        notify(slot, "error", f"The edit failed inside a plug-in ({type(result).__name__}: {result}); "
                              f"try another plug-in choice or report the error.")
    else:
        metadata = result.metadata()
        out = RunOutput(source=image, image=result.image, mask=result.mask,
                        png=png_with_metadata(result.image, metadata), metadata=metadata,
                        timings=dict(result.timings), notes=notes)
        if shown_mask is not None:
            out.mask = shown_mask
        if mask_caption is not None:
            out.mask_caption = mask_caption
        st.session_state[f"{slot}.result"] = out
        st.session_state.pop(f"{slot}.notice", None)
    st.rerun()


def _edit(bar: Any, preview: Any, cfg: EditConfig, image: Image.Image, source_prompt: str,
          target_prompt: str, mask: Image.Image | None, harmonize: Harmonize | None = None) -> EditResult:
    """Load (or reuse) the editor and edit, feeding the progress bar from the step callback."""
    loaded = resources.editor_for(cfg)
    while not loaded.lock.acquire(timeout=0.5):
        bar.progress(0.0, text="Waiting for another session's edit to finish…")
    phase = {"text": "Starting…"}

    def on_phase(name: str, done: int, total: int) -> None:
        phase["text"] = phase_text(name, done, total)

    def callback(step: int, total: int, picture: Image.Image | None) -> bool:
        bar.progress(min(step / max(total, 1), 1.0), text=phase["text"])
        if picture is not None:
            preview.image(picture, caption=phase["text"], width="stretch")
        return True

    previews = bool(st.session_state.get("run.previews"))
    try:
        if harmonize is not None:  # the one harmonize recipe, as spl harmonize and spl batch run it
            return harmonize_edit(loaded.editor, image, harmonize.foreground, source_prompt, target_prompt,
                                  config=cfg, record=harmonize.record, callback=callback,
                                  on_phase=on_phase, previews=previews)
        return loaded.editor.edit(image, source_prompt, target_prompt, mask=mask, callback=callback,
                                  on_phase=on_phase, previews=previews, **resources.edit_overrides(cfg))
    finally:
        loaded.lock.release()
