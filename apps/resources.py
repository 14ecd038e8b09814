"""Process-wide resources: one plug-in manager and one loaded editor per model choice."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

import streamlit as st

from spl_sdk.config import EditConfig
from spl_sdk.editor import LOAD_FIELDS, Editor
from spl_sdk.options import options_for
from spl_sdk.plugins import Plugins


@st.cache_resource(show_spinner=False)
def plugins() -> Plugins:
    """The installed plug-ins, loaded once per process (STYLE: the app caches one manager)."""
    from spl_sdk.memory import keep_freed_memory

    keep_freed_memory()  # full-size post-processing reuses its buffers (see spl_sdk.memory)
    return Plugins()


@dataclass
class LoadedEditor:
    """An editor and the lock that keeps two sessions from sharing its UNet at once."""

    editor: Editor
    lock: threading.Lock = field(default_factory=threading.Lock)


@st.cache_resource(show_spinner=False, max_entries=2)
def _load(backbone: str, model: str | None, device: str, dtype: str, cpu_offload: bool,
          backbone_options: str = "{}") -> LoadedEditor:
    cfg = EditConfig(backbone=backbone, model=model, device=device, dtype=dtype, cpu_offload=cpu_offload,
                     options={backbone: json.loads(backbone_options)})
    return LoadedEditor(Editor.from_config(cfg, plugins()))


def editor_for(cfg: EditConfig) -> LoadedEditor:
    """The editor for the config's backbone/model/device/dtype and options, loaded on first use only."""
    options = options_for(plugins(), "backbone", cfg.backbone, cfg.options)
    return _load(*(getattr(cfg, name) for name in LOAD_FIELDS),
                 json.dumps(options.model_dump(mode="json"), sort_keys=True))


def edit_overrides(cfg: EditConfig) -> dict:
    """The config fields an edit may change, as keyword overrides for ``Editor.edit``."""
    return {k: v for k, v in cfg.model_dump().items() if k not in LOAD_FIELDS}
