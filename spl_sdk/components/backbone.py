"""Base class of backbones: one model family behind the interface the sampler uses."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import torch

from spl_sdk.components.base import Component


class Backbone(Component):
    """A latent diffusion model family behind one interface the sampler uses.

    Attributes set by :meth:`load`: ``tokenizer`` (CLIP-style, ``model_max_length``),
    ``scheduler`` (diffusers, with ``alphas_cumprod`` and ``set_timesteps``),
    ``unet`` (a diffusers model with ``attn_processors``/``set_attn_processor``),
    ``device``, ``dtype`` and ``vae_scale_factor`` (pixels per latent cell).
    """

    default_model: ClassVar[str | None] = None
    tokenizer: Any
    scheduler: Any
    unet: Any
    device: torch.device
    dtype: torch.dtype
    vae_scale_factor: int = 8

    @classmethod
    @abstractmethod
    def load(cls, model: str | None = None, *, device: str = "auto", dtype: str = "auto",
             cpu_offload: bool = False) -> Backbone:
        """Build the backbone from a Hub id or local folder (``model``), or the class default."""

    @abstractmethod
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """Text embeddings (B, tokens, dim) for the prompts, padded to the model length."""

    @abstractmethod
    def predict_noise(self, latents: torch.Tensor, timestep: torch.Tensor | int,
                      embeddings: torch.Tensor) -> torch.Tensor:
        """The UNet's noise prediction for a batch of latents and embeddings."""

    @abstractmethod
    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """VAE latent (times the scaling factor) of images in [-1, 1]; deterministic (mean)."""

    @abstractmethod
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from scaled latents."""

    def tokenize(self, prompt: str) -> list[int]:
        """Token ids of one prompt with start/end tokens, unpadded."""
        return list(self.tokenizer(prompt).input_ids)
