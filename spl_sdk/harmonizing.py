"""The harmonize recipe (docs/method.md section 6), the one every door runs.

``spl harmonize`` (one composite or two folders), the batch worker's harmonize rows,
the studio's Harmonize page and the Python API all call :func:`harmonize_edit`: the
edit's configuration with :data:`~spl_sdk.harmonize.EDIT_SETTINGS` forced over it, CPL
on the background (the inverted foreground mask), and a result whose metadata carries
the harmonization. A harmonizer's options may hold a secret (an API key): those travel
in memory only and are never written to any file nor part of a row's key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spl_sdk.config import EditConfig
from spl_sdk.harmonize import EDIT_SETTINGS, Harmonization, background_mask
from spl_sdk.options import construct, options_for, public_dump, resolve_key
from spl_sdk.text import secret_name

if TYPE_CHECKING:  # the editor (torch) loads only when an edit runs
    from PIL import Image

    from spl_sdk.components import Harmonizer
    from spl_sdk.edit_progress import PhaseCallback, ProgressCallback
    from spl_sdk.editor import Editor, EditResult
    from spl_sdk.plugins import Plugins

DEFAULT_HARMONIZER = "offline"  # needs no key and no network
# environment variables whose values are scrubbed from records (e.g. a harmonizer's API key)
SECRET_VARIABLES = ("_API_KEY", "_TOKEN", "_SECRET")


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret value (and that of every *_API_KEY-like variable) replaced by ***."""
    from_env = [v for k, v in os.environ.items() if k.upper().endswith(SECRET_VARIABLES)]
    for secret in (*secrets, *from_env):
        if secret and len(secret) >= 8:  # short values would blank ordinary words
            text = text.replace(secret, "***")
    return text


def harmonizer_options(plugins: Plugins, raw: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """The entries of raw options that belong to harmonizers (the edit's components get the rest)."""
    return {k: dict(v) for k, v in (raw or {}).items() if resolve_key(plugins, k)[0] == "harmonizer"}


@dataclass(frozen=True)
class HarmonizerChoice:
    """A harmonizer by name with its raw options; they may hold secrets, so this stays in memory."""

    name: str = DEFAULT_HARMONIZER
    # {"openai": {"model": ...}}; repr=False: a log or traceback that prints the choice shows no key
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)

    def build(self, plugins: Plugins) -> Harmonizer:
        """The harmonizer, constructed with its validated options (secrets included)."""
        return construct(plugins, "harmonizer", self.name, self.options)

    def public(self, plugins: Plugins) -> dict[str, Any]:
        """Its name and options fit for files and keys: anything that looks like a secret left out."""
        options = public_dump(options_for(plugins, "harmonizer", self.name, self.options))
        return {"name": self.name, "options": {k: v for k, v in options.items() if not secret_name(k)}}

    def secrets(self) -> list[str]:
        """The values of its options that look like secrets (scrubbed from any message)."""
        return [str(v) for fields in self.options.values() for k, v in fields.items()
                if secret_name(k) and v is not None]


def harmonize_config(config: EditConfig) -> EditConfig:
    """``config`` with docs/method.md section 6's loss settings forced over it (SPL whole, CPL masked)."""
    return type(config).model_validate({**config.model_dump(), **EDIT_SETTINGS})


def harmonization_record(found: Harmonization | None, public: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a harmonized image's metadata adds: the harmonizer (name, public options) and its answer.

    ``found`` None: the prompts were written by hand (a manifest, the studio's boxes); no
    harmonizer was asked.
    """
    if found is None:
        return {"harmonizer": None, "harmonization": None}
    return {"harmonizer": (public or {}).get("name"), "harmonizer_options": dict((public or {}).get("options", {})),
            "harmonization": found.model_dump(mode="json")}


def harmonize_edit(editor: Editor, composite: Image.Image, foreground: Image.Image, source_prompt: str,
                   target_prompt: str, *, config: EditConfig | None = None,
                   record: Mapping[str, Any] | None = None, callback: ProgressCallback | None = None,
                   on_phase: PhaseCallback | None = None, previews: bool = False) -> EditResult:
    """Harmonize the object (white in ``foreground``) with its background: the one harmonize recipe.

    ``config`` (default: the editor's) gives everything but the losses, which docs/method.md
    section 6 fixes; ``record`` (:func:`harmonization_record`) goes into the result's metadata.
    """
    from spl_sdk.plan import LOAD_FIELDS

    cfg = harmonize_config(config or editor.config)
    overrides = {k: v for k, v in cfg.model_dump().items() if k not in LOAD_FIELDS}
    result = editor.edit(composite, source_prompt, target_prompt, mask=background_mask(foreground),
                         callback=callback, on_phase=on_phase, previews=previews, **overrides)
    result.extra = dict(record or {})
    return result
