"""SIGTERM and SIGHUP end a command the way Ctrl-C does: cleanup code runs, no temp file is left."""

from __future__ import annotations

import signal
import threading
from types import FrameType


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM or SIGHUP; a KeyboardInterrupt so every cleanup path runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(signum)


def exit_cleanly_on_signals() -> None:
    """Turn SIGTERM and SIGHUP into :class:`Terminated` (main thread only; no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)  # Windows has no SIGHUP
        if signum is not None and signal.getsignal(signum) in (signal.SIG_DFL, None):
            signal.signal(signum, _raise)
