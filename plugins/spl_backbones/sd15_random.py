"""``random-sd15``: the real Stable Diffusion 1.5 architecture with random weights, for benchmarks."""

from __future__ import annotations

from typing import Any, ClassVar

from spl_backbones.random_init import RandomBackbone

# Stable Diffusion 1.5's published component configs (unet/, vae/, text_encoder/ config.json).
SD15_UNET: dict[str, Any] = {
    "sample_size": 64, "in_channels": 4, "out_channels": 4,
    "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    "block_out_channels": (320, 640, 1280, 1280), "layers_per_block": 2, "norm_num_groups": 32,
    "attention_head_dim": 8, "cross_attention_dim": 768,
}
SD15_VAE: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "sample_size": 512,
    "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "norm_num_groups": 32,
    "scaling_factor": 0.18215,
}
# CLIP ViT-L/14 text tower.
SD15_TEXT: dict[str, Any] = {
    "vocab_size": 49408, "max_position_embeddings": 77, "hidden_size": 768,
    "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
    "projection_dim": 768, "hidden_act": "quick_gelu",
    "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407,
}


class SD15Random(RandomBackbone):
    """Randomly initialized SD-1.5 architecture (same compute as the real model), for benchmarks only."""

    name: ClassVar[str] = "random-sd15"
    unet_config: ClassVar[dict[str, Any]] = SD15_UNET
    vae_config: ClassVar[dict[str, Any]] = SD15_VAE
    text_config: ClassVar[dict[str, Any]] = SD15_TEXT
