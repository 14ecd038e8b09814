"""Row keys: a hash of the inputs' bytes, the prompts and the effective configuration."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from spl_sdk.jobs.manifest import Row


@lru_cache(maxsize=65536)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: str | None) -> str | None:
    """SHA-256 of a file's bytes (cached per size and mtime), or a marker when it cannot be read."""
    if path is None:
        return None
    try:
        st = Path(path).stat()
        return _digest(str(path), st.st_size, st.st_mtime_ns)
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return f"unreadable:{path}"


def row_key(row: Row, config: dict[str, Any] | None, harmonizer: dict[str, Any] | None = None) -> str:
    """Stable key of a row: same inputs, prompts, options and seed give the same key.

    A harmonize row adds its object words and, when the harmonizer writes its prompts,
    the harmonizer's name and public options (``HarmonizerChoice.public``: never a secret).
    """
    payload = {
        "id": row.id, "task": row.task,
        "image": file_digest(row.image), "mask": file_digest(row.mask), "edited": file_digest(row.edited),
        "source_prompt": row.source_prompt, "target_prompt": row.target_prompt,
        # an invalid row has no config: its raw options and seed stand in
        "config": config if config is not None else {"options": row.options, "seed": row.seed},
    }
    if row.task == "harmonize":  # other tasks keep the keys of earlier releases
        asks = row.source_prompt is None or row.target_prompt is None
        payload["harmonize"] = {"object": row.object, "harmonizer": harmonizer if asks else None}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
