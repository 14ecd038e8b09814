"""L1 and MSE pixel losses: baselines for comparison with SPL/CPL (docs/method.md section 3)."""

from __future__ import annotations

from spl_sdk.components import ClosedForm, LossTerm
from spl_sdk.lazy import torch


class _PixelLoss(LossTerm):
    """Shared closed-form gradient: d value / d E01 times d E01 / d E = m / 2."""

    default_weight = 1000.0
    curvature_factor: float | None = None  # d2 value / d E01^2 times numel, when it exists

    def _dvalue(self, diff: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


    def closed_form(self, source: torch.Tensor, edited: torch.Tensor
                                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Weighted loss, its gradient and its diagonal curvature (None for L1, which has none)."""
        with torch.no_grad():
            s01, e01 = self.prepare(source, edited)
            value = self.value(s01, e01)
            grad = self._dvalue(e01 - s01) * (self.weight / 2)
            curv = None
            if self.curvature_factor is not None:
                curv = torch.full((1, 1, 1, 1), self.weight / 4 * self.curvature_factor / grad.numel(),
                                  dtype=grad.dtype, device=grad.device)
            if self.mask is not None:
                m = self.mask_like(edited)
                grad *= m
                curv = None if curv is None else curv * m * m
        return ClosedForm(self.weight * value, grad, curv)


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
    curvature_factor = 2.0

    def value(self, source01: torch.Tensor, edited01: torch.Tensor) -> torch.Tensor:
        """Mean of (E - S)^2 over pixels and channels."""
        return (edited01 - source01).square().mean()

    def _dvalue(self, diff: torch.Tensor) -> torch.Tensor:
        return diff * (2.0 / diff.numel())
