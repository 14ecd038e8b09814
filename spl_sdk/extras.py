"""Optional dependencies ("extras"): import them on use, or say in one line which extra installs them."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from spl_sdk.errors import SplError


class MissingExtraError(SplError):
    """A feature whose optional dependency is not installed; the message names the extra to install."""


def install_hint(extra: str, what: str = "this feature") -> str:
    """The one-line message: what needs which extra, and the pip command that installs it."""
    return f"{what} needs the '{extra}' extra: pip install 'spl-sdk[{extra}]'"


def available(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken entry in sys.modules
        return False


def require(module: str, extra: str, what: str = "this feature") -> ModuleType:
    """Import ``module``; if it is not installed raise :class:`MissingExtraError` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(install_hint(extra, what)) from exc


def check(module: str, extra: str, what: str = "this feature") -> None:
    """Like :func:`require` without importing: for features that run the module in another process."""
    if not available(module):
        raise MissingExtraError(install_hint(extra, what))
