"""Load the editor once: the one place every door (CLI, batch worker, studio) loads a backbone.

:func:`load_editor` loads one (``allow_pickle`` lifts the safetensors-only rule for
trusted folders); :class:`EditorCache` keeps the editors loaded so far, keyed by the
fields fixed at load time plus the backbone's own options, each with the lock that
keeps two studio sessions from sharing one model at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from spl_sdk.config import EditConfig
from spl_sdk.editor import Editor
from spl_sdk.options import options_for
from spl_sdk.plan import LOAD_FIELDS
from spl_sdk.plugins import Plugins, get_plugins
from spl_sdk.weights import allowing_pickle


def load_editor(config: EditConfig, plugins: Plugins | None = None, *, allow_pickle: bool = False) -> Editor:
    """Load the configured backbone (the slow part); pickle weights only with ``allow_pickle``."""
    with allowing_pickle(allow_pickle):
        return Editor.from_config(config, plugins)


def load_config(config: EditConfig, plugins: Plugins) -> EditConfig:
    """The part of ``config`` that decides the loaded model: the load fields and the backbone's options."""
    options = options_for(plugins, "backbone", config.backbone, config.options).model_dump(mode="json")
    return EditConfig(**{name: getattr(config, name) for name in LOAD_FIELDS},
                      options={config.backbone: options} if options else {})


@dataclass
class LoadedEditor:
    """An editor and the lock that keeps two users from running its model at once."""

    editor: Editor
    lock: threading.Lock = field(default_factory=threading.Lock)


class EditorCache:
    """The editors loaded so far (the last ``max_entries`` model choices), one per load key."""

    def __init__(self, plugins: Plugins | None = None, max_entries: int = 2) -> None:
        self.plugins = plugins or get_plugins()
        self.max_entries = max_entries
        self._loaded: OrderedDict[str, LoadedEditor] = OrderedDict()
        self._lock = threading.Lock()  # one load at a time: two sessions never load one model twice

    def get(self, config: EditConfig, *, allow_pickle: bool = False) -> LoadedEditor:
        """The editor for the config's backbone, model, device, dtype and backbone options."""
        base = load_config(config, self.plugins)  # the rest of the config is per edit
        key = base.model_dump_json()
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = LoadedEditor(load_editor(base, self.plugins, allow_pickle=allow_pickle))
                while len(self._loaded) > self.max_entries:
                    self._loaded.popitem(last=False)  # the least recently used model goes
            self._loaded.move_to_end(key)
            return self._loaded[key]

    def clear(self) -> None:
        """Forget every loaded editor (their memory is freed once no edit holds them)."""
        with self._lock:
            self._loaded.clear()
