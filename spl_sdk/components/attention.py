"""Base class of attention controllers and the attention maps they store (DESIGN.md section 4)."""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from spl_sdk.components.backbone import Backbone
from spl_sdk.components.base import Component

if TYPE_CHECKING:
    from spl_sdk.config import EditConfig

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
    """Replaces UNet attention processors during an edit (DESIGN.md section 4).

    The batch the UNet sees is always ``[s_uncond, t_uncond, m_uncond, s_cond,
    t_cond, m_cond]``. The sampler calls :meth:`begin_step` before each UNet
    call and wraps the whole loop in :meth:`installed`.
    """

    def __init__(self, *, backbone: Backbone, source_prompt: str, target_prompt: str,
                 num_steps: int, config: EditConfig) -> None:
        self.backbone = backbone
        self.source_prompt = source_prompt
        self.target_prompt = target_prompt
        self.num_steps = num_steps
        self.config = config
        self.step = 0

    def begin_step(self, step: int) -> None:
        """Called by the sampler with the 0-based step index before the UNet call."""
        self.step = step

    @abstractmethod
    def processors(self, current: dict[str, Any]) -> dict[str, Any]:
        """New attention processors keyed by layer path, given the current ones."""

    @contextlib.contextmanager
    def installed(self) -> Iterator[AttentionController]:
        """Install this controller's processors on the UNet; restore the originals on exit."""
        unet = self.backbone.unet
        original = dict(unet.attn_processors)
        unet.set_attn_processor(self.processors(original))
        try:
            yield self
        finally:
            unet.set_attn_processor(original)

    def attention_maps(self, res: int = 16) -> AttentionMaps | None:
        """Stored cross-attention maps at ``res`` x ``res``, or None when none were stored."""
        return None

    def blend(self, x_t: torch.Tensor, x_s: torch.Tensor) -> torch.Tensor:
        """Local blend hook: may mix the target latent with the source's outside blend words."""
        return x_t
