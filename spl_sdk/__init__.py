"""spl-sdk: structure-preserving, text-driven image editing with latent diffusion."""

from spl_sdk.config import EditConfig, RefineConfig  # noqa: E402
from spl_sdk.errors import SplError  # noqa: E402
from spl_sdk.hookspecs import hookimpl  # noqa: E402
from spl_sdk.plugins import Plugins, get_plugins  # noqa: E402
from spl_sdk.version import __version__

__all__ = ["EditConfig", "Editor", "EditResult", "Plugins", "RefineConfig", "RefineResult", "SplError",
           "__version__", "get_plugins", "harmonize_edit", "hookimpl", "refine"]


def __getattr__(name: str) -> object:
    """``spl_sdk.Editor``, ``spl_sdk.refine``, ``spl_sdk.harmonize_edit`` without importing them for every plug-in."""
    if name in ("Editor", "EditResult"):
        from spl_sdk import editor

        return getattr(editor, name)
    if name in ("refine", "RefineResult"):  # refine(): the one refine recipe (spl_sdk.refiner)
        from spl_sdk import refiner

        return getattr(refiner, name)
    if name == "harmonize_edit":  # the one harmonize recipe (spl_sdk.harmonizing)
        from spl_sdk import harmonizing

        return harmonizing.harmonize_edit
    raise AttributeError(f"module 'spl_sdk' has no attribute {name!r}")
