"""``tiny-random-sdxl`` (tests) and ``random-sdxl`` (benchmarks): the SDXL layout with seeded random weights."""

from __future__ import annotations

from typing import Any, ClassVar

from spl_backbones.diffusers_backbone import DiffusersBackbone
from spl_backbones.random_init import RandomBackbone
from spl_backbones.sd15_random import SD15_TEXT
from spl_backbones.sdxl import SDXLBackbone
from spl_backbones.tokenizer import build_clip_tokenizer
from spl_sdk.components.base import ComponentOptions
from spl_sdk.lazy import torch

# SDXL base 1.0's published component configs (unet/, vae/, text_encoder_2/ config.json).
SDXL_UNET: dict[str, Any] = {
    "sample_size": 128, "in_channels": 4, "out_channels": 4,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "block_out_channels": (320, 640, 1280), "layers_per_block": 2, "norm_num_groups": 32,
    "attention_head_dim": (5, 10, 20),  # diffusers' legacy name for the number of heads
    "transformer_layers_per_block": (1, 2, 10), "cross_attention_dim": 2048,
    "use_linear_projection": True, "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256, "projection_class_embeddings_input_dim": 2816,
}
SDXL_VAE: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "sample_size": 1024,
    "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "norm_num_groups": 32,
    "scaling_factor": 0.13025, "force_upcast": True,
}
# OpenCLIP ViT-bigG/14 text tower; the first encoder is CLIP ViT-L/14 (SD 1.5's).
SDXL_TEXT_2: dict[str, Any] = {
    "vocab_size": 49408, "max_position_embeddings": 77, "hidden_size": 1280,
    "intermediate_size": 5120, "num_hidden_layers": 32, "num_attention_heads": 20,
    "projection_dim": 1280, "hidden_act": "gelu",
    "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 1,
}

# The SDXL layout at toy widths: no attention at full latent size, cross-attention at 1/2 and
# 1/4 with two transformer layers in the deepest block, both text encoders, text_time embedding.
TINY_SDXL_UNET: dict[str, Any] = {
    **SDXL_UNET, "sample_size": 64, "block_out_channels": (32, 64, 64), "norm_num_groups": 8,
    "attention_head_dim": (2, 4, 4), "transformer_layers_per_block": (1, 1, 2),
    "cross_attention_dim": 64, "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": 6 * 8 + 32,
}
TINY_SDXL_VAE: dict[str, Any] = {
    **SDXL_VAE, "sample_size": 512, "block_out_channels": (16, 32, 32, 32), "layers_per_block": 1,
    "norm_num_groups": 8,
}
TINY_TEXT_1: dict[str, Any] = {
    **SD15_TEXT, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "projection_dim": 32,
}
TINY_TEXT_2: dict[str, Any] = {
    **SDXL_TEXT_2, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "projection_dim": 32,
}


class RandomSDXL(SDXLBackbone, RandomBackbone):
    """Base of in-code SDXL-layout backbones: a second tokenizer ("!" padding) and text encoder with projection."""

    default_model: ClassVar[str | None] = None
    # built in code: no part to replace, only the LCM schedule
    Options: ClassVar[type[ComponentOptions]] = DiffusersBackbone.Options
    text_config_2: ClassVar[dict[str, Any]]

    @classmethod
    def load(cls, model: str | None = None, *, device: str = "auto", dtype: str = "auto",
             cpu_offload: bool = False, options: Any = None) -> SDXLBackbone:
        """Build in code; ``model`` may name a folder written by :meth:`save_pretrained` to reload it."""
        return RandomBackbone.load.__func__(cls, model, device=device, dtype=dtype,  # type: ignore[attr-defined]
                                            cpu_offload=cpu_offload)

    @classmethod
    def build_components(cls) -> dict[str, Any]:
        """RandomBackbone's parts plus ``tokenizer_2`` and ``text_encoder_2``, each seeded on its own."""
        from transformers import CLIPTextConfig, CLIPTextModelWithProjection

        parts = super().build_components()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cls.seed + 3)
            parts["text_encoder_2"] = CLIPTextModelWithProjection(CLIPTextConfig(**cls.text_config_2))
        parts["tokenizer_2"] = build_clip_tokenizer(pad_token="!")  # as SDXL's tokenizer_2
        return parts


class TinyRandomSDXL(RandomSDXL):
    """Tiny seeded random model in SDXL's layout with the real CLIP tokenizer, for tests and plug-in authors."""

    name: ClassVar[str] = "tiny-random-sdxl"
    # At 256 px the latent is 32x32 and cross-attention runs at 16x16 and 8x8: the masks read
    # the 16x16 maps, the finer of the two (SDXL at 1024 px reads its 32x32, also the coarser).
    default_working_size: ClassVar[int] = 256
    attention_res: ClassVar[int] = 16
    unet_config: ClassVar[dict[str, Any]] = TINY_SDXL_UNET
    vae_config: ClassVar[dict[str, Any]] = TINY_SDXL_VAE
    text_config: ClassVar[dict[str, Any]] = TINY_TEXT_1
    text_config_2: ClassVar[dict[str, Any]] = TINY_TEXT_2


class SDXLRandom(RandomSDXL):
    """Randomly initialized SDXL architecture (same compute as the real model), for benchmarks only."""

    name: ClassVar[str] = "random-sdxl"
    unet_config: ClassVar[dict[str, Any]] = SDXL_UNET
    vae_config: ClassVar[dict[str, Any]] = SDXL_VAE
    text_config: ClassVar[dict[str, Any]] = SD15_TEXT
    text_config_2: ClassVar[dict[str, Any]] = SDXL_TEXT_2
