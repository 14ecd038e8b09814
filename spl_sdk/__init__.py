"""spl-sdk: structure-preserving, text-driven image editing with latent diffusion."""

from spl_sdk.config import EditConfig, RefineConfig
from spl_sdk.errors import SplError
from spl_sdk.hookspecs import hookimpl
from spl_sdk.plugins import Plugins, get_plugins

__version__ = "0.1.0"

__all__ = ["EditConfig", "Plugins", "RefineConfig", "SplError", "__version__", "get_plugins", "hookimpl"]
