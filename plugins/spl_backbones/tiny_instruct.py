"""Tiny twins of the instruction-edit models, built in code with seeded random weights, for tests.

``tiny-random-kontext`` has FLUX.1 Kontext's layout (CLIP + the T5 stand-in of
:mod:`spl_backbones.t5_tokenizer`, FLUX transformer with guidance embedding, 16-channel
VAE, FLUX.1's scheduler) at toy widths: an instruction edit runs on a CPU in seconds.
``tiny-random-qwen-edit`` has Qwen-Image-Edit's (Qwen2.5-VL with its vision tower reading
the photo, the MMDiT, the 16-channel video VAE, Qwen-Image's scheduler); its tokenizer is
the byte-level stand-in of :mod:`spl_backbones.qwen_tokenizer`. ``tiny-random-klein`` has
FLUX.2 [klein]'s (Qwen3 with the same stand-in tokenizer and its chat template, the FLUX.2
transformer with reference-image tokens, the 32-channel VAE with batch-norm statistics).
Their output is noise-like; what they prove is the plumbing and the parity with diffusers.
"""

from __future__ import annotations

from typing import Any, ClassVar

from spl_backbones.flux2 import Flux2Klein
from spl_backbones.kontext import FluxKontextDev
from spl_backbones.qwen_image import QwenImageEdit
from spl_backbones.tiny_flow import (
    FLUX_SCHEDULER,
    TINY_CLIP,
    TINY_FLUX_TRANSFORMER,
    TINY_T5,
    TINY_VAE,
    _TinyFlow,
)
from spl_sdk.lazy import torch

# Random VAEs decode to noise-like images with no structure of the photo to register, so the twins
# leave the instruct method's alignment off unless asked (--align auto).
ALIGN = "off"


class TinyRandomKontext(_TinyFlow, FluxKontextDev):
    """Tiny seeded random FLUX.1-Kontext-layout model (photo tokens appended, embedded guidance), for tests."""

    name: ClassVar[str] = "tiny-random-kontext"
    default_steps: ClassVar[int] = 4
    default_align: ClassVar[str] = ALIGN

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


# Qwen-Image's published scheduler settings (scheduler/scheduler_config.json): a dynamic shift
# from 0.5 to 0.9 over 256..8192 tokens, exponential time shift, sigmas stretched to end at 0.02.
QWEN_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000, "shift": 1.0, "use_dynamic_shifting": True, "base_shift": 0.5,
    "max_shift": 0.9, "base_image_seq_len": 256, "max_image_seq_len": 8192, "shift_terminal": 0.02,
    "time_shift_type": "exponential",
}
QWEN_TEXT_WIDTH = 32
TINY_QWEN_TRANSFORMER: dict[str, Any] = {
    "patch_size": 2, "in_channels": 64, "out_channels": 16, "num_layers": 2, "attention_head_dim": 16,
    "num_attention_heads": 2, "joint_attention_dim": QWEN_TEXT_WIDTH, "axes_dims_rope": (4, 6, 6),
}
# The real video VAE's layout (16 latent channels, 8 px per cell, three spatial downsamplings of
# which the last two are also temporal) at a toy width; latents_mean/std stay the published defaults.
TINY_QWEN_VAE: dict[str, Any] = {
    "base_dim": 16, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 1,
    "temperal_downsample": [False, True, True],
}


class TinyRandomQwenEdit(_TinyFlow, QwenImageEdit):
    """Tiny seeded random Qwen-Image-Edit-layout model (Qwen2.5-VL reading the photo, MMDiT, video VAE)."""

    name: ClassVar[str] = "tiny-random-qwen-edit"
    default_steps: ClassVar[int] = 4
    default_align: ClassVar[str] = ALIGN
    # the photo is seen at 64 x 64 px by both encoders (the real model: 384^2 and 1024^2 px areas)
    condition_area: ClassVar[int] = 64 * 64
    vae_area: ClassVar[int] = 64 * 64
    default_working_size: ClassVar[int] = 64

    @classmethod
    def build_components(cls) -> dict[str, Any]:
        """Stand-in tokenizer/processor, a two-layer Qwen2.5-VL, the MMDiT, the video VAE, Qwen's scheduler."""
        from diffusers import (
            AutoencoderKLQwenImage,
            FlowMatchEulerDiscreteScheduler,
            QwenImageTransformer2DModel,
        )
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

        from spl_backbones.qwen_tokenizer import (
            VOCAB_SIZE,
            build_qwen_processor,
            build_qwen_tokenizer,
            special_ids,
        )

        ids = special_ids()
        text = {"hidden_size": QWEN_TEXT_WIDTH, "intermediate_size": 37, "num_hidden_layers": 2,
                "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": VOCAB_SIZE,
                "rope_scaling": {"mrope_section": [2, 2, 4], "rope_type": "default", "type": "default"},
                "rope_theta": 1000000.0, "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"]}
        vision = {"depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2,
                  "out_hidden_size": QWEN_TEXT_WIDTH}
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, vocab_size=VOCAB_SIZE,
                                  image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                                  vision_start_token_id=ids["<|vision_start|>"],
                                  vision_end_token_id=ids["<|vision_end|>"], bos_token_id=ids["<|endoftext|>"],
                                  eos_token_id=ids["<|im_end|>"])
        tokenizer = build_qwen_tokenizer()
        return {
            "tokenizer": tokenizer, "processor": build_qwen_processor(tokenizer),
            "text_encoder": cls.seeded(20, lambda: Qwen2_5_VLForConditionalGeneration(config)),
            "transformer": cls.seeded(21, lambda: QwenImageTransformer2DModel(**TINY_QWEN_TRANSFORMER)),
            "vae": cls.seeded(22, lambda: AutoencoderKLQwenImage(**TINY_QWEN_VAE)),
            "scheduler": FlowMatchEulerDiscreteScheduler(**QWEN_SCHEDULER),
        }


KLEIN_TEXT_WIDTH = 32
TINY_KLEIN_TRANSFORMER: dict[str, Any] = {
    "patch_size": 1, "in_channels": 128, "num_layers": 1, "num_single_layers": 1, "attention_head_dim": 16,
    "num_attention_heads": 2, "joint_attention_dim": 3 * KLEIN_TEXT_WIDTH, "timestep_guidance_channels": 32,
    "mlp_ratio": 3.0, "axes_dims_rope": (4, 4, 4, 4), "guidance_embeds": False,
}
# FLUX.2's VAE layout: 32 latent channels, 8 px per cell, batch-norm statistics of the 2x2 patches
TINY_KLEIN_VAE: dict[str, Any] = {
    "block_out_channels": (16, 32, 32, 32), "layers_per_block": 1, "latent_channels": 32, "norm_num_groups": 8,
}


class TinyRandomKlein(_TinyFlow, Flux2Klein):
    """Tiny seeded random FLUX.2-klein-layout model (Qwen3 with the stand-in tokenizer, reference tokens)."""

    name: ClassVar[str] = "tiny-random-klein"
    default_steps: ClassVar[int] = 4
    default_align: ClassVar[str] = ALIGN
    text_layers: ClassVar[tuple[int, ...]] = (1, 2, 3)  # of its three layers (the real model: 9, 18, 27 of 36)
    max_sequence_length: ClassVar[int] = 64

    @classmethod
    def build_components(cls) -> dict[str, Any]:
        """Stand-in tokenizer, a three-layer Qwen3, the FLUX.2 transformer and VAE (with batch-norm stats)."""
        from diffusers import (
            AutoencoderKLFlux2,
            FlowMatchEulerDiscreteScheduler,
            Flux2Transformer2DModel,
        )
        from transformers import Qwen3Config, Qwen3ForCausalLM

        from spl_backbones.qwen_tokenizer import VOCAB_SIZE, build_qwen_tokenizer, special_ids

        ids = special_ids()
        config = Qwen3Config(hidden_size=KLEIN_TEXT_WIDTH, intermediate_size=37, num_hidden_layers=3,
                             num_attention_heads=2, num_key_value_heads=2, head_dim=16, vocab_size=VOCAB_SIZE,
                             bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                             pad_token_id=ids["<|endoftext|>"])

        def vae() -> Any:
            model = AutoencoderKLFlux2(**TINY_KLEIN_VAE)
            # running statistics as after training (the real ones are not zero-mean unit-variance)
            model.bn.running_mean.copy_(torch.randn(model.bn.running_mean.shape) * 0.1)
            model.bn.running_var.copy_(torch.rand(model.bn.running_var.shape) + 0.5)
            return model

        return {
            "tokenizer": build_qwen_tokenizer(),
            "text_encoder": cls.seeded(30, lambda: Qwen3ForCausalLM(config)),
            "transformer": cls.seeded(31, lambda: Flux2Transformer2DModel(**TINY_KLEIN_TRANSFORMER)),
            "vae": cls.seeded(32, vae),
            "scheduler": FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0,
                                                         use_dynamic_shifting=True),
        }
