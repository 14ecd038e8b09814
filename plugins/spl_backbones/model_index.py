"""``model_index.json``: the file that tells a diffusers pipeline which class each subfolder holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_model_index(folder: Path, pipeline_class: str, parts: dict[str, Any], **fields: Any) -> None:
    """Write ``folder/model_index.json`` for ``parts`` (subfolder -> component, None for an absent one)."""
    import diffusers

    index: dict[str, Any] = {"_class_name": pipeline_class, "_diffusers_version": diffusers.__version__, **fields}
    for name, part in parts.items():
        index[name] = [None, None] if part is None else [type(part).__module__.split(".")[0], type(part).__name__]
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
