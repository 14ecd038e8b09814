"""Base class of attention controllers and the attention maps they store (docs/method.md section 4)."""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from spl_sdk.components.backbone import Backbone
from spl_sdk.components.base import Component, ComponentOptions
from spl_sdk.components.layout import BatchLayout
from spl_sdk.lazy import torch


@dataclass
class AttentionMaps:
    """Cross-attention maps summed over steps, layers and heads, per branch.

    ``source`` and ``target`` are (res, res, tokens) averages at one spatial
    resolution; ``res`` is that resolution.
    """

    source: torch.Tensor
    target: torch.Tensor
    res: int


class AttentionController(Component):
    """Replaces the denoiser's attention processors during an edit (docs/method.md section 4).

    The edit method sets :attr:`layout` (which batch rows are which branch) before
    installing the controller, calls :meth:`begin_step` before each denoiser call and
    wraps its loop in :meth:`installed`. ``requires`` lists the backbone capabilities
    the controller needs; a batch that does not fit the layout is left alone.
    """

    kind: ClassVar[str] = "attention"
    kind_label: ClassVar[str] = "attention controller"
    register_hook: ClassVar[str] = "spl_register_attention_controllers"

    requires: ClassVar[frozenset[str]] = frozenset({"attention-processors"})
    layout: BatchLayout | None = None

    def __init__(self, *, backbone: Backbone, source_prompt: str, target_prompt: str,
                 num_steps: int, profile: str = "default", options: ComponentOptions | None = None) -> None:
        self.options = self.make_options(options)
        self.backbone = backbone
        self.source_prompt = source_prompt
        self.target_prompt = target_prompt
        self.num_steps = num_steps
        self.profile = profile  # "paper" reproduces the paper's code where the controller differs
        self.step = 0

    def begin_step(self, step: int) -> None:
        """Called by the edit method with the 0-based step index before the UNet call."""
        self.step = step

    @abstractmethod
    def processors(self, current: dict[str, Any]) -> dict[str, Any]:
        """New attention processors keyed by layer path, given the current ones."""

    @contextlib.contextmanager
    def installed(self) -> Iterator[AttentionController]:
        """Install this controller's processors on the denoiser; restore the originals on exit."""
        denoiser = self.backbone.denoiser
        original = dict(denoiser.attn_processors)
        denoiser.set_attn_processor(self.processors(original))
        try:
            yield self
        finally:
            denoiser.set_attn_processor(original)

    @classmethod
    def check(cls, backbone: Backbone) -> None:
        """Refuse, before any work, a backbone that lacks a capability this controller needs."""
        backbone.require(f"attention controller '{cls.name}'", cls.requires,
                         "choose another --attention or --backbone")

    def attention_maps(self, res: int = 16) -> AttentionMaps | None:
        """Stored cross-attention maps at ``res`` x ``res``, or None when none were stored."""
        return None

    def blend(self, x_t: torch.Tensor, x_s: torch.Tensor) -> torch.Tensor:
        """Local blend hook: may mix the target latent with the source's outside blend words."""
        return x_t
