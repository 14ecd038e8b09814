"""A tqdm progress bar on stderr for long CLI jobs, shown only when stderr is a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from tqdm import tqdm

Progress = Callable[[int, int, float | None], None]


class _Bar:
    """The ``progress(i, total, loss)`` callable behind :func:`progress_bar`."""

    def __init__(self, desc: str, show: bool, unit: str) -> None:
        self.desc, self.show, self.unit = desc, show, unit
        self.bar: tqdm | None = None
        self.last = -1

    def __call__(self, i: int, total: int, loss: float | None = None) -> None:
        if not self.show:
            return
        if self.bar is None or self.bar.total != total or i < self.last:
            self.close()  # a new phase: new total, or the count started again
            self.bar = tqdm(total=total, desc=self.desc, file=sys.stderr, unit=self.unit,
                            dynamic_ncols=True, leave=False)
        self.last = i
        self.bar.update(max(0, min(i, total) - self.bar.n))
        if loss is not None:
            self.bar.set_postfix(loss=f"{loss:.4g}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@contextlib.contextmanager
def progress_bar(desc: str, *, unit: str = "it", enabled: bool | None = None) -> Iterator[Progress]:
    """Yield ``progress(i, total, loss_or_none)`` driving a bar; quiet unless stderr is a terminal.

    ``i`` is the number of steps done so far (1 after the first step). A call whose ``total``
    differs from the previous one, or whose ``i`` goes back, starts a new bar, so
    one callable can serve several phases (first pass, second pass, post-processing).
    """
    bar = _Bar(desc, sys.stderr.isatty() if enabled is None else enabled, unit)
    try:
        yield bar
    finally:
        bar.close()
