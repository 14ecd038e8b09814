"""L1 and MSE pixel losses: baselines for comparison with SPL/CPL (DESIGN.md section 3)."""

from __future__ import annotations

import torch

from spl_sdk.components import LossTerm


class _PixelLoss(LossTerm):
    """Shared closed-form gradient: d value / d E01 times d E01 / d E = m / 2."""

    default_weight = 1000.0

    def _dvalue(self, diff: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def value_and_grad(self, source: torch.Tensor, edited: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted loss and its closed-form gradient in ``edited``."""
        with torch.no_grad():
            s01, e01 = self.prepare(source, edited)
            value = self.value(s01, e01)
            grad = self._dvalue(e01 - s01) * (self.weight / 2)
            if self.mask is not None:
                grad *= self.mask_like(edited)
        return self.weight * value, grad


class L1Loss(_PixelLoss):
    """Mean absolute pixel difference (a baseline)."""

    name = "l1"

    def value(self, source01: torch.Tensor, edited01: torch.Tensor) -> torch.Tensor:
        """Mean of |E - S| over pixels and channels."""
        return (edited01 - source01).abs().mean()

    def _dvalue(self, diff: torch.Tensor) -> torch.Tensor:
        return diff.sign() / diff.numel()


class MSELoss(_PixelLoss):
    """Mean squared pixel difference (a baseline)."""

    name = "mse"

    def value(self, source01: torch.Tensor, edited01: torch.Tensor) -> torch.Tensor:
        """Mean of (E - S)^2 over pixels and channels."""
        return (edited01 - source01).square().mean()

    def _dvalue(self, diff: torch.Tensor) -> torch.Tensor:
        return diff * (2.0 / diff.numel())
