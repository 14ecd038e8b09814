"""Batch progress on stderr: a tqdm bar on a terminal, one plain line per row otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class BatchProgress:
    """Counts rows done and failed and their rate; ``quiet`` shows nothing."""

    def __init__(self, total: int, *, quiet: bool = False, stream: TextIO | None = None,
                 tty: bool | None = None) -> None:
        self.total, self.quiet = total, quiet
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.ok = self.failed = 0
        self.began = time.perf_counter()
        self.bar: Any = None
        if not quiet and self.tty and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="batch", unit="row", file=self.stream, dynamic_ncols=True)

    @property
    def rate(self) -> float:
        """Rows finished per minute so far."""
        return (self.ok + self.failed) * 60.0 / max(time.perf_counter() - self.began, 1e-9)

    def __call__(self, record: dict[str, Any]) -> None:
        """Count one finished row and show it."""
        if record.get("status") == "ok":
            self.ok += 1
        else:
            self.failed += 1
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.set_postfix(ok=self.ok, failed=self.failed, refresh=False)
            self.bar.update(1)
            if record.get("status") != "ok":
                self.bar.write(f"failed {record.get('id')}: {record.get('error')}", file=self.stream)
            return
        n = self.ok + self.failed
        detail = "ok" if record.get("status") == "ok" else f"failed: {record.get('error')}"
        print(f"[{n}/{self.total}] {record.get('id')} {detail} | {self.ok} ok, {self.failed} failed, "
              f"{self.rate:.1f} rows/min", file=self.stream, flush=True)

    def close(self) -> None:
        """Close the bar, if any."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
