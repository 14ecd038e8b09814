"""Checks of what plug-ins return, for :meth:`spl_sdk.plugins.Plugins.call` (None = fine)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spl_sdk.lazy import torch

Check = Callable[[Any], "str | None"]


def scalar(out: Any) -> str | None:
    """A loss must be a tensor holding one number."""
    if not isinstance(out, torch.Tensor):
        return f"a {type(out).__name__} (expected a scalar tensor)"
    if out.numel() != 1:
        return f"a loss of shape {tuple(out.shape)} (expected a scalar)"
    return None


def mask_map(out: Any) -> str | None:
    """A mask must be one (H, W) map, possibly with leading dimensions of size 1."""
    if not isinstance(out, torch.Tensor):
        return f"a {type(out).__name__} (expected a (1, 1, H, W) tensor)"
    if out.dim() < 2 or out.dim() > 4 or any(n != 1 for n in out.shape[:-2]):
        return f"a mask of shape {tuple(out.shape)} (expected (1, 1, H, W))"
    return None


def shaped_like(reference: torch.Tensor) -> Check:
    """The output must be a tensor of ``reference``'s shape."""

    def check(out: Any) -> str | None:
        if not isinstance(out, torch.Tensor):
            return f"a {type(out).__name__} (expected a tensor of shape {tuple(reference.shape)})"
        if tuple(out.shape) != tuple(reference.shape):
            return f"an image of shape {tuple(out.shape)} (expected {tuple(reference.shape)})"
        return None

    return check


def has_latent(out: Any) -> str | None:
    """An edit method must return an EditOutput with a latent tensor."""
    if not isinstance(getattr(out, "latent", None), torch.Tensor):
        return f"a {type(out).__name__} without a latent tensor (expected an EditOutput)"
    return None
