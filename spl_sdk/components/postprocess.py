"""Base class of post-processors (run once at the source's full resolution)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import ClassVar, Literal

from spl_sdk.components.base import Component, ComponentOptions
from spl_sdk.components.loss import LossTerm
from spl_sdk.lazy import torch

# (done, total) of the post-processor's own work; raises Canceled when the user cancels
PostCallback = Callable[[int, int], None]


class PostProcessor(Component):
    """Runs once on the decoded result at the source's full resolution."""

    kind: ClassVar[str] = "post-processor"
    kind_label: ClassVar[str] = "post-processor"
    register_hook: ClassVar[str] = "spl_register_post_processors"

    def __init__(self, *, iterations: int = 100, solver: Literal["fast", "reference"] = "fast",
                 options: ComponentOptions | None = None) -> None:
        self.iterations, self.solver = iterations, solver  # the edit's optimizer settings
        self.options = self.make_options(options)

    def progress_total(self) -> int:
        """How many units :meth:`process` reports through its callback (0: it reports none)."""
        return 0

    @abstractmethod
    def process(self, source: torch.Tensor, edited: torch.Tensor, terms: list[LossTerm],
                callback: PostCallback | None = None) -> torch.Tensor:
        """Return the improved edit (1, 3, H, W) in [-1, 1] given the original source.

        Call ``callback(done, total)`` as the work advances (total as in :meth:`progress_total`).
        """
