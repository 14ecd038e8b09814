"""Tiny twins of the instruction-edit models, built in code with seeded random weights, for tests.

``tiny-random-kontext`` has FLUX.1 Kontext's layout (CLIP + the T5 stand-in of
:mod:`spl_backbones.t5_tokenizer`, FLUX transformer with guidance embedding, 16-channel
VAE, FLUX.1's scheduler) at toy widths: an instruction edit runs on a CPU in seconds.
Its output is noise-like; what it proves is the plumbing and the parity with diffusers.
"""

from __future__ import annotations

from typing import Any, ClassVar

from spl_backbones.kontext import FluxKontextDev
from spl_backbones.tiny_flow import (
    FLUX_SCHEDULER,
    TINY_CLIP,
    TINY_FLUX_TRANSFORMER,
    TINY_T5,
    TINY_VAE,
    _TinyFlow,
)


class TinyRandomKontext(_TinyFlow, FluxKontextDev):
    """Tiny seeded random FLUX.1-Kontext-layout model (photo tokens appended, embedded guidance), for tests."""

    name: ClassVar[str] = "tiny-random-kontext"
    default_steps: ClassVar[int] = 4

    @classmethod
    def build_components(cls) -> dict[str, Any]:
        """CLIP, T5 stand-in, FLUX transformer with guidance embedding, VAE, FLUX.1's scheduler config."""
        from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
        from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

        from spl_backbones.t5_tokenizer import build_t5_tokenizer
        from spl_backbones.tokenizer import build_clip_tokenizer

        return {
            "tokenizer": build_clip_tokenizer(), "tokenizer_2": build_t5_tokenizer(cls.max_sequence_length),
            "text_encoder": cls.seeded(10, lambda: CLIPTextModel(CLIPTextConfig(**TINY_CLIP))),
            "text_encoder_2": cls.seeded(12, lambda: T5EncoderModel(T5Config(**TINY_T5))),
            "transformer": cls.seeded(13, lambda: FluxTransformer2DModel(**TINY_FLUX_TRANSFORMER)),
            "vae": cls.seeded(14, lambda: AutoencoderKL(**TINY_VAE, scaling_factor=0.3611,
                                                        shift_factor=0.1159)),
            "scheduler": FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER),
        }
