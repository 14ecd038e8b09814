"""Checks that numbers stayed finite: a loss that overflows must stop a run, not no-op it silently."""

from __future__ import annotations

import math

from spl_sdk.errors import SplError


class NonFiniteLossError(SplError):
    """The summed loss became inf or NaN during optimization."""


def check_finite_loss(before: float, after: float) -> None:
    """Raise NonFiniteLossError when either loss of an optimization is inf or NaN."""
    if math.isfinite(before) and math.isfinite(after):
        return
    raise NonFiniteLossError(
        f"the loss became non-finite during optimization (before: {before:g}, after: {after:g}); "
        f"the images or the weights overflow float32: lower --structure-weight/--color-weight "
        f"and check that the inputs hold no NaN or infinite values.")
