"""Test helper: the summed weighted loss of an edit against its source, as the solvers minimize it."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from spl_sdk.components import LossTerm


def total_loss(terms: Sequence[LossTerm], source: torch.Tensor, edited: torch.Tensor) -> float:
    """Summed weighted loss of ``edited`` against ``source`` (both in [-1, 1])."""
    with torch.no_grad():
        return float(sum(float(term(source, edited)) for term in terms))
