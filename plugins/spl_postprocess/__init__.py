"""Built-in post-processor: ``loss-refine`` (image-space optimization at full resolution)."""

from __future__ import annotations

from typing import Any

from spl_sdk import hookimpl
from spl_sdk.components import LossTerm, PostProcessor
from spl_sdk.components.postprocess import PostCallback
from spl_sdk.lazy import torch
from spl_sdk.optimizer import optimize_image


class LossRefine(PostProcessor):
    """Optimize the final image against the original source with the edit's loss terms."""

    name = "loss-refine"

    def progress_total(self) -> int:
        """One unit per optimizer iteration."""
        return self.iterations

    def process(self, source: torch.Tensor, edited: torch.Tensor, terms: list[LossTerm],
                callback: PostCallback | None = None) -> torch.Tensor:
        """Run the core image-space optimizer (docs/method.md section 2, post-processing)."""
        progress = None if callback is None else (lambda i, n, _loss: callback(i, n))
        return optimize_image(source, edited, terms, iterations=self.iterations,
                              solver=self.solver, progress=progress).image


@hookimpl
def spl_register_post_processors(register: Any) -> None:
    """Register ``loss-refine``."""
    register(LossRefine)
