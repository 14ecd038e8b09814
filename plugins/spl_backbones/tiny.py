"""``tiny-random-sd15``: an SD-1.5-shaped backbone at toy widths that runs a whole edit on a CPU in seconds."""

from __future__ import annotations

from typing import Any, ClassVar

from spl_backbones.random_init import RandomBackbone

# The SD-1.5 block layout (three cross-attention down blocks and a plain one, mirrored up
# blocks, two layers per block) at small widths. At 256 px the latent is 32x32, so the
# cross-attention maps are 32x32, 16x16 and 8x8 in down_blocks.0-2 / up_blocks.3-1, 4x4 in
# the mid block: the 16x16 maps the masks need exist in down_blocks.1 and up_blocks.2.
TINY_UNET: dict[str, Any] = {
    "sample_size": 32, "in_channels": 4, "out_channels": 4,
    "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    "block_out_channels": (32, 32, 64, 64), "layers_per_block": 2, "norm_num_groups": 8,
    "attention_head_dim": 2,  # diffusers' name for the number of heads in SD 1.x UNets
    "cross_attention_dim": 32,
}
# Four blocks = three downsamplings: 8 pixels per latent cell, 4 latent channels, as SD's VAE.
TINY_VAE: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "sample_size": 256,
    "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (16, 32, 32, 32), "layers_per_block": 1, "norm_num_groups": 8,
    "scaling_factor": 0.18215,
}
# Real CLIP vocabulary and ids (start 49406, end/pad 49407), 77 positions, toy width.
TINY_TEXT: dict[str, Any] = {
    "vocab_size": 49408, "max_position_embeddings": 77, "hidden_size": 32,
    "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    "hidden_act": "quick_gelu", "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407,
}


class TinyRandom(RandomBackbone):
    """Tiny seeded random SD-1.5-shaped model with the real CLIP tokenizer, for tests and plug-in authors."""

    name: ClassVar[str] = "tiny-random-sd15"
    default_working_size: ClassVar[int] = 256
    unet_config: ClassVar[dict[str, Any]] = TINY_UNET
    vae_config: ClassVar[dict[str, Any]] = TINY_VAE
    text_config: ClassVar[dict[str, Any]] = TINY_TEXT
