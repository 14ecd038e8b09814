"""Allocator tuning for full-resolution work on the CPU."""

from __future__ import annotations

import ctypes
import sys

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_applied = False


def keep_freed_memory(limit: int = 1 << 30) -> bool:
    """Let glibc reuse freed image-sized buffers instead of unmapping them (Linux, idempotent).

    Every solver iteration allocates full-size temporaries. By default glibc serves
    blocks over its mmap threshold (at most 32 MiB) with fresh mappings and returns
    them to the kernel on free, so each iteration page-faults its buffers in again.
    Raising the mmap and trim thresholds to ``limit`` keeps them in the heap:
    measured on this project's 2-core CPU, 10 SPL iterations at 2048x2048 took
    6.2 s instead of 13.8 s (system time 0.8 s instead of 9.2 s) for 5% more peak
    memory. Called by the ``spl`` command, the app, and the image-space optimizer on
    its first CPU call (so that the Python API and Ray workers get it too).
    Returns True when the setting was applied.
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        _applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, limit)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, limit))
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False
    return _applied
