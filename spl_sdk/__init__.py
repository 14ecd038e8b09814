"""spl-sdk: structure-preserving, text-driven image editing with latent diffusion."""

from spl_sdk.config import EditConfig, RefineConfig  # noqa: E402
from spl_sdk.errors import SplError  # noqa: E402
from spl_sdk.hookspecs import hookimpl  # noqa: E402
from spl_sdk.plugins import Plugins, get_plugins  # noqa: E402
from spl_sdk.version import __version__

__all__ = ["EditConfig", "Editor", "EditResult", "Plugins", "RefineConfig", "SplError", "__version__",
           "get_plugins", "hookimpl"]


def __getattr__(name: str) -> object:
    """``spl_sdk.Editor`` / ``spl_sdk.EditResult`` without importing the editor for every plug-in."""
    if name in ("Editor", "EditResult"):
        from spl_sdk import editor

        return getattr(editor, name)
    if name == "refine":  # the module; spl_sdk.refine.refine() is the one refine recipe
        import importlib

        return importlib.import_module("spl_sdk.refine")
    raise AttributeError(f"module 'spl_sdk' has no attribute {name!r}")
