"""PIE-Bench's own layout: ``mapping_file.json`` next to ``annotation_images/``.

Each entry (keyed by a 12-digit id) has ``image_path`` (relative to annotation_images),
``original_prompt`` and ``editing_prompt`` (edited words in [brackets], removed here as
PIE-Bench's evaluation does), ``editing_type_id`` ("0" to "9") and ``mask`` (the edited
region, run-length encoded: :mod:`spl_sdk.metrics.rle`; a leaf module, read by the batch manifest and by the metrics alike).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spl_sdk.errors import ConfigError

EDIT_TYPES = {
    "0": "random", "1": "change object", "2": "add object", "3": "delete object",
    "4": "change content", "5": "change pose", "6": "change color", "7": "change material",
    "8": "change background", "9": "change style",
}
IMAGES = "annotation_images"
__all__ = ["EDIT_TYPES", "IMAGES", "clean_prompt", "edit_type", "entry_problem", "is_mapping", "manifest_records",
           "read_mapping"]


def is_mapping(data: Any) -> bool:
    """True when ``data`` looks like PIE-Bench's mapping file."""
    return isinstance(data, dict) and bool(data) and all(
        isinstance(v, dict) and "editing_type_id" in v and "image_path" in v for v in data.values())


def entry_problem(entry: dict[str, Any]) -> str | None:
    """What is wrong with one mapping entry's types, or None (PIE-Bench's own file has none)."""
    if not isinstance(entry.get("image_path"), str) or not entry["image_path"].strip():
        return f"'image_path' must be a relative file name, not {entry.get('image_path')!r:.40}"
    if not isinstance(entry.get("editing_type_id"), str | int) or isinstance(entry["editing_type_id"], bool):
        return f"'editing_type_id' must be a digit such as \"6\", not {entry.get('editing_type_id')!r:.40}"
    for key in ("original_prompt", "editing_prompt"):
        if not isinstance(entry.get(key), str):
            return f"'{key}' is missing" if key not in entry else f"'{key}' must be a text, not {entry[key]!r:.40}"
    mask = entry.get("mask")
    if mask is not None and not (isinstance(mask, list) and all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in mask)):
        return "'mask' must be a list of whole numbers (run-length encoded)"
    return None


def read_mapping(path: str | Path) -> dict[str, dict[str, Any]]:
    """The mapping file's entries by id, or a one-line error when it is not one."""
    from spl_sdk.parsing import loads, read_text

    path = Path(path)
    what = f"PIE-Bench mapping file '{path}'"
    data = loads(read_text(path, what), "json", what)
    if not is_mapping(data):
        raise ConfigError(f"'{path}' is not a PIE-Bench mapping_file.json (entries need image_path "
                          f"and editing_type_id); a manifest is .jsonl, .csv or .parquet.")
    for key, entry in data.items():
        problem = entry_problem(entry)
        if problem is not None:
            raise ConfigError(f"entry '{str(key)[:40]}' of {what} is malformed: {problem}; fix it "
                              f"or download the mapping file again.")
    return data


def clean_prompt(text: str) -> str:
    """A PIE-Bench prompt without the [brackets] that mark edited words."""
    return " ".join(str(text).replace("[", "").replace("]", "").split())


def edit_type(entry: dict[str, Any]) -> str:
    """The entry's edit type as a name ("change color"), or its id when unknown."""
    key = str(entry.get("editing_type_id"))
    return EDIT_TYPES.get(key, key)


def manifest_records(path: str | Path) -> list[dict[str, Any]]:
    """Manifest rows for ``spl batch``: id, image, prompts and edit type of every entry.

    Images are relative to the mapping's folder, as every manifest's paths are (the
    manifest reader resolves them there), so a relative mapping path works too.
    """
    path = Path(path)
    return [{"id": key, "image": str(Path(IMAGES) / entry["image_path"]),
             "source_prompt": clean_prompt(entry.get("original_prompt", "")),
             "target_prompt": clean_prompt(entry.get("editing_prompt", "")),
             "edit_type": edit_type(entry), "pie_image_path": entry["image_path"]}
            for key, entry in read_mapping(path).items()]
