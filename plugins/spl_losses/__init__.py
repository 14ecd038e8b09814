"""Built-in loss terms: SPL (structure), CPL (color), and the L1/MSE baselines (docs/method.md section 3)."""

from __future__ import annotations

from spl_losses.color import CPLLoss
from spl_losses.pixel import L1Loss, MSELoss
from spl_losses.spl import SPLLoss
from spl_sdk import hookimpl
from spl_sdk.hookspecs import Register

__all__ = ["CPLLoss", "L1Loss", "MSELoss", "SPLLoss"]


@hookimpl
def spl_register_loss_terms(register: Register) -> None:
    """Register spl, cpl, l1 and mse."""
    for cls in (SPLLoss, CPLLoss, L1Loss, MSELoss):
        register(cls)
