"""``tiny-random-sd3`` and ``tiny-random-flux``: the SD3 / FLUX.1 layouts at toy widths, seeded, built in code.

They run a whole flowedit edit on a CPU in seconds, for tests and plug-in
authors; their output is noise-like. CLIP parts use the real CLIP tokenizer;
T5 uses the offline stand-in of :mod:`spl_backbones.t5_tokenizer`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from spl_backbones.flow_backbone import FlowBackbone, flow_dtype
from spl_backbones.flux import FluxBackbone
from spl_backbones.random_init import BuiltInCode
from spl_backbones.sd3 import SD3Backbone
from spl_backbones.t5_tokenizer import build_t5_tokenizer
from spl_backbones.tokenizer import build_clip_tokenizer
from spl_sdk.lazy import torch

T5_WIDTH = 64
TINY_CLIP: dict[str, Any] = {
    "vocab_size": 49408, "max_position_embeddings": 77, "hidden_size": 32, "projection_dim": 32,
    "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4, "hidden_act": "gelu",
    "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407,
}
TINY_T5: dict[str, Any] = {
    "vocab_size": 32128, "d_model": T5_WIDTH, "d_ff": 64, "d_kv": 8, "num_layers": 2, "num_heads": 4,
    "relative_attention_num_buckets": 8, "feed_forward_proj": "gated-gelu", "is_encoder_decoder": False,
    "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1,
}
# 16 latent channels and 8 pixels per cell, as the SD3 and FLUX VAEs (no quant convs either)
TINY_VAE: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 16, "sample_size": 256,
    "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (16, 32, 32, 32), "layers_per_block": 1, "norm_num_groups": 8,
    "use_quant_conv": False, "use_post_quant_conv": False,
}
TINY_SD3_TRANSFORMER: dict[str, Any] = {
    "sample_size": 32, "patch_size": 2, "in_channels": 16, "out_channels": 16, "num_layers": 2,
    "attention_head_dim": 8, "num_attention_heads": 4, "joint_attention_dim": T5_WIDTH,
    "caption_projection_dim": 32, "pooled_projection_dim": 64, "pos_embed_max_size": 64,
}
TINY_FLUX_TRANSFORMER: dict[str, Any] = {
    "patch_size": 1, "in_channels": 64, "num_layers": 1, "num_single_layers": 2,
    "attention_head_dim": 16, "num_attention_heads": 2, "joint_attention_dim": T5_WIDTH,
    "pooled_projection_dim": 32, "guidance_embeds": True, "axes_dims_rope": (4, 6, 6),
}
# The published scheduler configs: SD3.5 Medium (fixed shift 3) and FLUX.1-dev (shift from mu).
SD3_SCHEDULER: dict[str, Any] = {"num_train_timesteps": 1000, "shift": 3.0}
FLUX_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000, "shift": 3.0, "use_dynamic_shifting": True, "base_shift": 0.5,
    "max_shift": 1.15, "base_image_seq_len": 256, "max_image_seq_len": 4096,
}


class _TinyFlow(BuiltInCode, FlowBackbone):
    """In-code construction shared by the tiny flow models."""

    seed: ClassVar[int] = 0
    default_working_size: ClassVar[int] = 256
    max_sequence_length: ClassVar[int] = 64
    gated: ClassVar[bool] = False
    default_model: ClassVar[str | None] = None

    @classmethod
    def built_dtype(cls, dtype: str, device: torch.device) -> torch.dtype:
        """float32 on the CPU, bfloat16 on CUDA (T5 overflows in float16), as the full models."""
        return flow_dtype(dtype, device)

    @classmethod
    def seeded(cls, offset: int, build: Any) -> Any:
        """``build()`` under its own seed, leaving the global RNG as it was."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cls.seed + offset)
            return build()

    @classmethod
    def build_components(cls) -> dict[str, Any]:
        """Every part of the model, each seeded on its own."""
        raise NotImplementedError


class TinyRandomSD3(_TinyFlow, SD3Backbone):
    """Tiny seeded random SD3-layout model (two CLIPs + T5 stand-in, MMDiT, 16-ch VAE), for tests."""

    name: ClassVar[str] = "tiny-random-sd3"

    @classmethod
    def build_components(cls) -> dict[str, Any]:
        """CLIP-L/CLIP-G/T5 stand-ins, MMDiT, VAE and SD3.5's scheduler config."""
        from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
        from transformers import (
            CLIPTextConfig,
            CLIPTextModelWithProjection,
            T5Config,
            T5EncoderModel,
        )

        def clip() -> Any:
            return CLIPTextModelWithProjection(CLIPTextConfig(**TINY_CLIP))

        return {
            "tokenizer": build_clip_tokenizer(), "tokenizer_2": build_clip_tokenizer(),
            "tokenizer_3": build_t5_tokenizer(cls.max_sequence_length),
            "text_encoder": cls.seeded(0, clip), "text_encoder_2": cls.seeded(1, clip),
            "text_encoder_3": cls.seeded(2, lambda: T5EncoderModel(T5Config(**TINY_T5))),
            "transformer": cls.seeded(3, lambda: SD3Transformer2DModel(**TINY_SD3_TRANSFORMER)),
            "vae": cls.seeded(4, lambda: AutoencoderKL(**TINY_VAE, scaling_factor=1.5305,
                                                       shift_factor=0.0609)),
            "scheduler": FlowMatchEulerDiscreteScheduler(**SD3_SCHEDULER),
        }


class TinyRandomFlux(_TinyFlow, FluxBackbone):
    """Tiny seeded random FLUX.1-dev-layout model (CLIP + T5 stand-in, packed latents, guidance), for tests."""

    name: ClassVar[str] = "tiny-random-flux"
    capabilities: ClassVar[frozenset[str]] = frozenset({"flow", "attention-processors", "embedded-guidance"})

    @classmethod
    def build_components(cls) -> dict[str, Any]:
        """CLIP, T5 stand-in, FLUX transformer with guidance embedding, VAE, FLUX.1-dev's scheduler config."""
        from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
        from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

        return {
            "tokenizer": build_clip_tokenizer(), "tokenizer_2": build_t5_tokenizer(cls.max_sequence_length),
            "text_encoder": cls.seeded(0, lambda: CLIPTextModel(CLIPTextConfig(**TINY_CLIP))),
            "text_encoder_2": cls.seeded(2, lambda: T5EncoderModel(T5Config(**TINY_T5))),
            "transformer": cls.seeded(3, lambda: FluxTransformer2DModel(**TINY_FLUX_TRANSFORMER)),
            "vae": cls.seeded(4, lambda: AutoencoderKL(**TINY_VAE, scaling_factor=0.3611,
                                                       shift_factor=0.1159)),
            "scheduler": FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER),
        }
