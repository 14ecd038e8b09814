"""Process-wide resources: one plug-in manager and one editor cache (spl_sdk.editor_cache) per server."""

from __future__ import annotations

import os
import re

import streamlit as st

from spl_sdk.config import EditConfig
from spl_sdk.editor_cache import EditorCache, LoadedEditor
from spl_sdk.errors import ConfigError
from spl_sdk.plan import LOAD_FIELDS
from spl_sdk.plugins import Plugins

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")  # 'name' or 'owner/name', no path parts


@st.cache_resource(show_spinner=False)
def plugins() -> Plugins:
    """The installed plug-ins, loaded once per process (STYLE: the app caches one manager)."""
    from spl_sdk.memory import keep_freed_memory

    keep_freed_memory()  # full-size post-processing reuses its buffers (see spl_sdk.memory)
    return Plugins()


@st.cache_resource(show_spinner=False)
def editors() -> EditorCache:
    """The editors loaded in this server process (the last two model choices), shared by every session."""
    return EditorCache(plugins(), max_entries=2)


def editor_for(cfg: EditConfig) -> LoadedEditor:
    """The editor for the config's backbone/model/device/dtype and options, loaded on first use only."""
    check_model_choice(cfg.model)
    return editors().get(cfg)


def model_folders_allowed() -> bool:
    """Whether users may name a model folder on the server's disk (off unless the operator enables it).

    Enabled by the environment variable SPL_STUDIO_MODEL_FOLDERS=1 or the Streamlit
    secret ``studio_model_folders = true``: a studio served beyond localhost must not
    let visitors load (or probe for) arbitrary files on the server.
    """
    if os.environ.get("SPL_STUDIO_MODEL_FOLDERS", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    try:
        return bool(st.secrets.get("studio_model_folders", False))
    except Exception:  # no secrets file: the default, off
        return False


def check_model_choice(model: str | None) -> None:
    """Refuse a model that is a server-side path unless model folders are allowed; Hub ids always pass."""
    if not model or model_folders_allowed():
        return
    if HUB_ID.fullmatch(model) and not os.path.exists(model):
        return
    raise ConfigError("this studio does not load model folders from the server's disk; leave Model "
                      "empty or give a Hugging Face Hub id (owner/name). The operator can allow "
                      "folders with SPL_STUDIO_MODEL_FOLDERS=1.")


def edit_overrides(cfg: EditConfig) -> dict:
    """The config fields an edit may change, as keyword overrides for ``Editor.edit``."""
    return {k: v for k, v in cfg.model_dump().items() if k not in LOAD_FIELDS}
