"""Folders of images paired by file stem (``spl harmonize COMPOSITES MASKS``: cat.png finds cat.jpg)."""

from __future__ import annotations

from pathlib import Path

from spl_sdk.imageio import FORMATS

IMAGE_SUFFIXES = frozenset(FORMATS) | {".bmp"}


def image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder`` (hidden files skipped), sorted by name."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def by_stem(files: list[Path]) -> dict[str, list[Path]]:
    """Files grouped by stem, so 'cat.png' finds 'cat.jpg' in another folder."""
    groups: dict[str, list[Path]] = {}
    for path in files:
        groups.setdefault(path.stem, []).append(path)
    return groups
