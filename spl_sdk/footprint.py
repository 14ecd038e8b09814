"""Working memory of full-resolution work: an estimate from the image size, checked up front.

The image-space solver (refine, and an edit's full-size post-processing) keeps
a few dozen float32 planes of the image alive. ``BYTES_PER_PIXEL`` was measured
with ``python benchmarks/footprint.py``: peak RSS growth of optimize_image with
SPL + CPL was 222 B/px at 2048x2048 (186 B/px SPL alone at 1024x1024), plus
about 30 B/px for the source, start and output images around it. Update the
constant when the solver changes; everything else follows from it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from spl_sdk.errors import SplError

BYTES_PER_PIXEL = 256
ALLOW_LARGE_HELP = "Run even when the image's estimated working memory exceeds what is available."


class MemoryBudgetError(SplError):
    """An image too large for the memory this machine has (estimated up front, or ran out)."""


def working_bytes(width: int, height: int) -> int:
    """Estimated peak working memory, in bytes, of refining a ``width`` x ``height`` image at full size."""
    return int(width) * int(height) * BYTES_PER_PIXEL


def human(n: float) -> str:
    """Bytes as text: '512 MiB', '15.3 GiB'."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _cgroup_room() -> int | None:
    """Bytes left under a cgroup v2 memory limit (containers), None without one."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(0, int(limit) - used)


def available_bytes() -> int | None:
    """Memory available to this process now (psutil, else /proc/meminfo, capped by a cgroup limit)."""
    found: int | None = None
    try:
        import psutil

        found = int(psutil.virtual_memory().available)
    except (ImportError, OSError):
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    found = int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            found = None
    room = _cgroup_room()
    if room is not None:
        found = room if found is None else min(found, room)
    return found


OVERRIDE_HINT = "downscale it, free memory, or pass --allow-large (SPL_ALLOW_LARGE=1) to try anyway"


def check_fits(width: int, height: int, what: str = "refine it at full size",
               allow_large: bool = False, available: int | None = None,
               hint: str = OVERRIDE_HINT) -> None:
    """Raise MemoryBudgetError when the estimate for a ``width`` x ``height`` image exceeds available memory."""
    if allow_large or os.environ.get("SPL_ALLOW_LARGE", "").strip() in ("1", "true", "yes", "on"):
        return
    need = working_bytes(width, height)
    have = available_bytes() if available is None else available
    if have is not None and need > have:
        raise MemoryBudgetError(
            f"a {width}x{height} image needs about {human(need)} of working memory to {what}, but "
            f"only {human(have)} is available; {hint}.")


def _out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text
                                              or "not enough memory" in text.lower())


@contextlib.contextmanager
def out_of_memory_as_error(width: int, height: int, what: str = "process it") -> Iterator[None]:
    """Turn running out of CPU memory inside the block into one MemoryBudgetError sentence."""
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        have = available_bytes()
        raise MemoryBudgetError(
            f"ran out of memory to {what}: a {width}x{height} image needs about "
            f"{human(working_bytes(width, height))} of working memory"
            + (f" and {human(have)} is available now" if have is not None else "")
            + "; downscale it, close other programs, or use a machine with more memory.") from None
