"""Folder batches: inputs paired by file stem, and a JSON-lines log that lets a run resume."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

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


class JsonlLog:
    """Append-only JSON-lines record of a batch; the last record of a file decides whether it is done."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def records(self) -> list[dict[str, Any]]:
        """Every readable record (a line cut off by a crash is skipped)."""
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                out.append(record)
        return out

    def done(self) -> set[str]:
        """Files whose latest record has status 'ok'."""
        last: dict[str, str] = {}
        for record in self.records():
            if "file" in record:
                last[str(record["file"])] = str(record.get("status"))
        return {name for name, status in last.items() if status == "ok"}

    def append(self, record: dict[str, Any]) -> None:
        """Write one record and flush it to disk, so a crash loses at most the file in progress."""
        text = json.dumps(record, default=str, sort_keys=True) + "\n"
        if self.path.exists() and self.path.stat().st_size:
            with self.path.open("rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":  # a previous run died mid-line: start a fresh line
                    text = "\n" + text
        with self.path.open("a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
