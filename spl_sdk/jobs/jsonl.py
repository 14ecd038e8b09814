"""The append-only JSON-lines log under the batch journal (spl_sdk.jobs.results.Journal)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class JsonlLog:
    """Append-only JSON-lines records, each line flushed to disk (spl_sdk.jobs.results.Journal keys them)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def numbered(self, strict: bool = False) -> list[tuple[int, dict[str, Any]]]:
        """(line number, record) of every readable record.

        A line that is not a JSON object (cut off by a crash, damaged, not UTF-8, nested
        too deep) is skipped: its file is then simply not done. With ``strict`` only an
        unfinished last line (a crash mid-write) is skipped; another is one error line.
        A log that is a folder or cannot be read is one error line naming it.
        """
        from spl_sdk.errors import SplError
        from spl_sdk.parsing import ParseError, decode, loads

        if not self.path.exists() and not self.path.is_symlink():
            return []
        if self.path.is_dir():
            raise SplError(f"the log '{self.path}' is a folder, not the run's log file; move it "
                           f"away or choose another output folder.")
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise SplError(f"cannot read the log '{self.path}' ({exc.strerror or exc}); check its "
                           f"permissions.") from None
        out = []
        lines = data.splitlines()
        for number, raw in enumerate(lines, 1):
            where = f"line {number} of '{self.path}'"
            try:
                record = loads(decode(raw, where), "json", where)
            except ParseError as exc:
                unfinished = number == len(lines) and not data.endswith(b"\n")
                if strict and not unfinished:
                    raise SplError(f"{str(exc).rstrip('.')}; run the same command again to rewrite "
                                   f"the log.") from None
                continue
            if isinstance(record, dict):
                out.append((number, record))
        return out

    def append(self, record: dict[str, Any]) -> None:
        """Write one record and flush it to disk, so a crash loses at most the file in progress."""
        from spl_sdk.errors import SplError

        text = json.dumps(record, default=str, sort_keys=True) + "\n"
        try:
            if self.path.exists() and self.path.stat().st_size:
                with self.path.open("rb") as f:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":  # a previous run died mid-line: start a fresh line
                        text = "\n" + text
            with self.path.open("a", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise SplError(f"cannot write the log '{self.path}' ({exc.strerror or exc}); check free "
                           f"space and permissions.") from None
