"""Progress on stderr for long CLI jobs: a tqdm bar per phase on a terminal, one line per phase otherwise.

API (also for ``spl batch`` / ``spl eval``)::

    with phase_progress(quiet=quiet) as report:       # Reporter
        report("steps", done, total)                   # a new phase starts when the name changes
        report("refine", done, total, loss=0.12)       # or when ``done`` goes back / ``total`` changes
    # leaving the block closes the last phase

On a terminal each phase gets its own bar (count, rate, ETA); elsewhere (a log file,
a pipe) each phase ends with one line ``NAME: DONE/TOTAL UNIT in S s (R UNIT/s)``.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

Progress = Callable[[int, int, float | None], None]
PHASE_UNITS = {"refine": "it", "post-processing": "it"}  # anything else counts denoising steps


class Reporter:
    """``report(phase, done, total, loss=None)``: drives one bar (or line) per phase."""

    def __init__(self, show: bool, terminal: bool, stream: IO[str], units: dict[str, str]) -> None:
        self.show, self.terminal, self.stream, self.units = show, terminal, stream, units
        self.phase: str | None = None
        self.total = self.done = 0
        self.began = 0.0
        self.bar: Any = None

    def __call__(self, phase: str, done: int, total: int, loss: float | None = None) -> None:
        if not self.show:
            return
        if phase != self.phase or total != self.total or done < self.done:
            self.close()
            self._open(phase, total)
        self.done = max(0, min(done, total))
        if self.bar is not None:
            self.bar.update(self.done - self.bar.n)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.4g}", refresh=False)

    def _open(self, phase: str, total: int) -> None:
        self.phase, self.total, self.done, self.began = phase, total, 0, time.perf_counter()
        if self.terminal:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=phase, file=self.stream, unit=self.unit,
                            dynamic_ncols=True, leave=True)

    @property
    def unit(self) -> str:
        """The unit counted in the current phase."""
        return self.units.get(self.phase or "", PHASE_UNITS.get(self.phase or "", "step"))

    def close(self) -> None:
        """End the current phase: close its bar, or write its one line."""
        if self.phase is None:
            return
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        else:
            seconds = time.perf_counter() - self.began
            rate = f" ({self.done / seconds:.2f} {self.unit}/s)" if seconds > 0 and self.done else ""
            print(f"{self.phase}: {self.done}/{self.total} {self.unit} in {seconds:.1f} s{rate}",
                  file=self.stream, flush=True)
        self.phase = None


def _columns(stream: IO[str]) -> int:
    """The terminal's width in columns (0 when unknown)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return 0


@contextlib.contextmanager
def phase_progress(*, quiet: bool = False, terminal: bool | None = None, stream: IO[str] | None = None,
                   units: dict[str, str] | None = None) -> Iterator[Reporter]:
    """Yield a :class:`Reporter` on stderr; ``quiet`` silences it, ``terminal`` overrides the tty check."""
    stream = stream or sys.stderr
    # a terminal of unknown size (0 columns) would hide tqdm's bar: write lines there instead
    is_tty = stream.isatty() and _columns(stream) > 0 if terminal is None else terminal
    reporter = Reporter(not quiet, is_tty, stream, units or {})
    try:
        yield reporter
    finally:
        reporter.close()


@contextlib.contextmanager
def progress_bar(desc: str, *, unit: str = "it", enabled: bool | None = None,
                 quiet: bool = False) -> Iterator[Progress]:
    """Yield ``progress(i, total, loss_or_none)`` for a single-phase job named ``desc``."""
    with phase_progress(quiet=quiet or enabled is False, units={desc: unit}) as report:
        yield lambda i, total, loss=None: report(desc, i, total, loss)
