"""Core error sentences in the studio's words: CLI flags become the names of the studio's settings."""

from __future__ import annotations

import re

from spl_apps.controls import LABELS
from spl_sdk.config import EditConfig

# a missing model's fix as the CLI words it, and as the studio does (its Model box, or tiny-random-sd15)
_PASS_MODEL = re.compile(r"pass (?:it with )?`?--model(?: ([^`\s]+))?`?")
_IN_PYTHON = re.compile(r" \(\w+= in Python\)")
_FLAG = re.compile(r"`?--([a-z][a-z0-9-]*)`?")
_CLI_ONLY = {"allow-large": "a smaller photo", "allow-pickle": "a model in safetensors format",
             "force": "another file name", "config": "the settings"}


def _setting(match: re.Match[str], labels: dict[str, str]) -> str:
    """'--working-size' -> '“Working size”'; flags the studio lacks become their nearest words."""
    name = match.group(1)
    if name in _CLI_ONLY:
        return _CLI_ONLY[name]
    field = name.replace("-", "_")
    if field == "model":
        return "the Model setting (sidebar)"
    if field in EditConfig.model_fields:
        label = labels.get(field) or LABELS.get(field, field.replace("_", " ").capitalize()).split(" (")[0]
        return f"“{label}”"
    return match.group(0)


def for_studio(message: str, labels: dict[str, str] | None = None) -> str:
    """``message`` (a core error) with CLI flags and Python hints replaced by the studio's settings.

    ``labels`` (field -> label) names a page's own widgets where they differ from the edit's.
    """
    message = _IN_PYTHON.sub("", message)
    message = message.replace("drop --model", "leave the Model setting empty")
    message = _PASS_MODEL.sub(lambda m: "type " + (m.group(1) or "its folder")
                              + " into the Model setting (sidebar)", message)
    return _FLAG.sub(lambda m: _setting(m, labels or {}), message)
