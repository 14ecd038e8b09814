"""An example third-party spl-sdk plug-in: the total-variation loss term ``tv``.

Copy this package to start your own plug-in; see docs/plugins.md in spl-sdk.
"""

from __future__ import annotations

import torch

from spl_sdk import hookimpl
from spl_sdk.components import LossTerm
from spl_sdk.hookspecs import Register

__version__ = "0.1.0"


def total_variation(gray: torch.Tensor) -> torch.Tensor:
    """Per-pixel anisotropic total variation |dI/dx| + |dI/dy| of (B, 1, H, W) images."""
    dx = (gray[..., :, 1:] - gray[..., :, :-1]).abs()
    dy = (gray[..., 1:, :] - gray[..., :-1, :]).abs()
    # zero-pad the last column/row so both maps keep the image's size
    return torch.nn.functional.pad(dx, (0, 1)) + torch.nn.functional.pad(dy, (0, 0, 0, 1))


class TVLoss(LossTerm):
    """Total-variation difference: the edit's local edge strength should match the source's."""

    name = "tv"
    default_weight = 1000.0

    def value(self, source01: torch.Tensor, edited01: torch.Tensor) -> torch.Tensor:
        # mean over pixels of (TV(P) - TV(I))^2 on intensities I, P = mean over RGB, like SPL,
        # so the loss constrains edges only and leaves colour free
        tv_s = total_variation(source01.mean(dim=1, keepdim=True))
        tv_e = total_variation(edited01.mean(dim=1, keepdim=True))
        return ((tv_e - tv_s) ** 2).mean()


@hookimpl
def spl_register_loss_terms(register: Register) -> None:
    """Register the ``tv`` loss term."""
    register(TVLoss)
