"""Which model weight files may be loaded: safetensors only, unless the user opts in to pickle files.

Pickle-based weights (``.bin``, ``.pt``, ``.ckpt``) run code while they load, so a
downloaded or shared model folder could take over the machine. Backbones load
with ``use_safetensors=True``; the CLI's ``--allow-pickle``, the
:func:`allowing_pickle` context manager or ``SPL_ALLOW_PICKLE=1`` lift that for
files the user trusts, with a warning.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar

_ALLOW_PICKLE: ContextVar[bool] = ContextVar("spl_allow_pickle", default=False)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
ALLOW_PICKLE_HELP = ("Also load pickle weights (.bin, .ckpt) from a model folder without safetensors; "
                     "pickle files can run code when loaded: only for files you trust.")


def pickle_allowed() -> bool:
    """True inside :func:`allowing_pickle` or when SPL_ALLOW_PICKLE is 1/true/yes/on."""
    env = os.environ.get("SPL_ALLOW_PICKLE", "").strip().lower() in ("1", "true", "yes", "on")
    return _ALLOW_PICKLE.get() or env


@contextlib.contextmanager
def allowing_pickle(enabled: bool = True) -> Iterator[None]:
    """Let backbones loaded inside the block fall back to pickle weights (only for trusted files)."""
    token = _ALLOW_PICKLE.set(enabled)
    try:
        yield
    finally:
        _ALLOW_PICKLE.reset(token)
