"""An example third-party spl-sdk plug-in: the total-variation loss term ``tv``.

Copy this package to start your own plug-in; see docs/plugins.md in spl-sdk.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from spl_sdk import hookimpl
from spl_sdk.components import ComponentOptions, LossTerm
from spl_sdk.hookspecs import Register
from spl_sdk.lazy import torch

__version__ = "0.1.0"


def total_variation(gray: torch.Tensor, norm: str = "anisotropic", eps: float = 1e-6) -> torch.Tensor:
    """Per-pixel total variation of (B, 1, H, W) images.

    anisotropic: |dI/dx| + |dI/dy|; isotropic: sqrt(dI/dx^2 + dI/dy^2 + eps^2)
    (``eps`` keeps the gradient finite where the image is flat).
    """
    # zero-pad the last column/row so both difference maps keep the image's size
    dx = torch.nn.functional.pad(gray[..., :, 1:] - gray[..., :, :-1], (0, 1))
    dy = torch.nn.functional.pad(gray[..., 1:, :] - gray[..., :-1, :], (0, 0, 0, 1))
    if norm == "isotropic":
        return torch.sqrt(dx * dx + dy * dy + eps * eps)
    return dx.abs() + dy.abs()


class TVLoss(LossTerm):
    """Total-variation difference: the edit's local edge strength should match the source's."""

    name = "tv"
    default_weight = 1000.0

    class Options(ComponentOptions):
        """Set with --option tv.norm=isotropic, or options: {tv: {norm: isotropic}} in a config file."""

        norm: Literal["anisotropic", "isotropic"] = Field(
            "anisotropic", description="How the two gradient components combine: |dx| + |dy| "
                                       "(anisotropic) or the gradient's length (isotropic).")
        eps: float = Field(1e-6, gt=0, le=0.1,
                           description="Smoothing of the isotropic norm where the image is flat.")

    def value(self, source01: torch.Tensor, edited01: torch.Tensor) -> torch.Tensor:
        # mean over pixels of (TV(P) - TV(I))^2 on intensities I, P = mean over RGB, like SPL,
        # so the loss constrains edges only and leaves color free
        norm, eps = self.options.norm, self.options.eps
        tv_s = total_variation(source01.mean(dim=1, keepdim=True), norm, eps)
        tv_e = total_variation(edited01.mean(dim=1, keepdim=True), norm, eps)
        return ((tv_e - tv_s) ** 2).mean()


@hookimpl
def spl_register_loss_terms(register: Register) -> None:
    """Register the ``tv`` loss term."""
    register(TVLoss)
