"""Base class of post-processors (run once at the source's full resolution)."""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any

import torch

from spl_sdk.components.base import Component
from spl_sdk.components.loss import LossTerm

if TYPE_CHECKING:
    from spl_sdk.config import EditConfig

class PostProcessor(Component):
    """Runs once on the decoded result at the source's full resolution."""

    def __init__(self, config: EditConfig) -> None:
        self.config = config

    @abstractmethod
    def process(self, source: torch.Tensor, edited: torch.Tensor, terms: list[LossTerm],
                progress: Any = None) -> torch.Tensor:
        """Return the improved edit (1, 3, H, W) in [-1, 1] given the original source."""
