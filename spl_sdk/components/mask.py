"""Base class of mask extractors and what they may read (docs/method.md section 5)."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from spl_sdk.components.attention import AttentionMaps
from spl_sdk.components.base import Component, ComponentOptions
from spl_sdk.lazy import torch


@dataclass
class MaskContext:
    """What a mask extractor may use; fields it does not need may be None."""

    source_image: torch.Tensor  # (1, 3, H, W) in [-1, 1], full size
    source_prompt: str = ""
    target_prompt: str = ""
    first_result: torch.Tensor | None = None  # first-pass edit, same size as source
    attention: AttentionMaps | None = None
    tokenizer: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class MaskExtractor(Component):
    """Produces a soft mask (1, 1, H, W) in [0, 1] at the source image's size."""

    kind: ClassVar[str] = "mask-extractor"
    kind_label: ClassVar[str] = "mask extractor"
    register_hook: ClassVar[str] = "spl_register_mask_extractors"

    needs_first_pass: ClassVar[bool] = False
    requires: ClassVar[frozenset[str]] = frozenset()  # backbone capabilities the extractor needs

    def __init__(self, *, options: ComponentOptions | None = None, mask_file: Path | None = None) -> None:
        self.options = self.make_options(options)
        self.mask_file = mask_file  # the edit's mask file, for extractors that read one

    def check(self, context: MaskContext) -> None:
        """Raise a user-facing error before any diffusion runs if the inputs cannot work."""

    @abstractmethod
    def extract(self, context: MaskContext) -> torch.Tensor:
        """The mask for this edit; 1 marks the area where masked losses apply."""
