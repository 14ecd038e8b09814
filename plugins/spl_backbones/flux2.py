"""FLUX.2 [klein] (``flux2-klein``): a 4B flow transformer that edits from a reference image and a prompt.

As ``Flux2KleinPipeline``: Qwen3 reads the prompt through its chat template (thinking
off, padded to 512 tokens) and the hidden states of three of its layers, side by side,
condition the transformer. The 32-channel VAE latent is cut into 2x2 patches (128
channels at 1/16 of the image size) and normalized by the VAE's batch-norm statistics;
that patchified latent is what the denoiser, and this backbone's contract, work on
(``vae_scale_factor`` 16, one token per cell). The photo's latent is appended to the
sequence with position ids (t, h, w, l) whose t is 10 (0 for the latent). The
distilled 4B model samples in 4 steps without guidance; the shift mu comes from an
empirical fit over the token count and the step count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from spl_backbones import vae_latents
from spl_backbones.flow_backbone import FlowBackbone
from spl_backbones.kontext import InstructOptions, ReferenceLatent
from spl_sdk.components.backbone import Conditioning
from spl_sdk.lazy import no_grad, torch
from spl_sdk.lazy import numpy as np

MAX_TOKENS = 512  # Flux2KleinPipeline's max_sequence_length
IMAGE_T = 10  # the t position id of the (first) reference image's tokens


def empirical_mu(tokens: int, steps: int) -> float:
    """FLUX.2's schedule shift: linear in the token count, interpolated between fits at 10 and 200 steps.

    The published fits: mu = 8.73809524e-05 n + 1.89833333 at 10 steps and
    0.00016927 n + 0.45666666 at 200 steps; above 4300 tokens the 200-step fit alone.
    """
    at_200 = 0.00016927 * tokens + 0.45666666
    if tokens > 4300:
        return float(at_200)
    at_10 = 8.73809524e-05 * tokens + 1.89833333
    slope = (at_200 - at_10) / 190.0
    return float(at_200 + slope * (steps - 200.0))


def position_ids(batch: int, t: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """(B, h * w, 4) ids (t, row, column, 0) of a grid of tokens, row-major."""
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    ids = torch.stack([torch.full_like(rows, t), rows, cols, torch.zeros_like(rows)], dim=-1).reshape(-1, 4)
    return ids.unsqueeze(0).expand(batch, -1, -1).to(device)


def tokens_of(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h * w, C), row-major."""
    b, c, h, w = latents.shape
    return latents.reshape(b, c, h * w).permute(0, 2, 1)


def grid_of(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`tokens_of`."""
    b, _, c = tokens.shape
    return tokens.permute(0, 2, 1).reshape(b, c, height, width)


class Flux2Klein(ReferenceLatent, FlowBackbone):
    """FLUX.2 [klein] 4B (distilled, Apache-2.0): Qwen3 4B text encoder, reference-image editing."""

    name: ClassVar[str] = "flux2-klein"
    family: ClassVar[str] = "flux2"
    default_model: ClassVar[str | None] = "black-forest-labs/FLUX.2-klein-4B"
    pipeline_class: ClassVar[str] = "Flux2KleinPipeline"
    pipeline_classes: ClassVar[tuple[str, ...]] = ("Flux2KleinPipeline",)
    capabilities: ClassVar[frozenset[str]] = frozenset({"flow", "attention-processors", "image-condition"})
    default_method: ClassVar[str] = "instruct"
    default_steps: ClassVar[int] = 4  # the distilled model's setting
    default_guidance: ClassVar[float] = 1.0  # distilled: no classifier-free guidance
    negative_prompt: ClassVar[str] = ""
    tokenizer_parts: ClassVar[tuple[str, ...]] = ("tokenizer",)
    model_parts: ClassVar[tuple[str, ...]] = ("text_encoder", "transformer", "vae")
    patch_size: ClassVar[int] = 1  # the latent is patchified already: one token per cell
    text_layers: ClassVar[tuple[int, ...]] = (9, 18, 27)  # Qwen3 hidden states read (the pipeline's)
    max_sequence_length: ClassVar[int] = MAX_TOKENS
    Options = InstructOptions

    @classmethod
    def part_loaders(cls) -> dict[str, Callable[..., Any]]:
        """Diffusers/transformers classes of each subfolder of a FLUX.2 [klein] repository."""
        from diffusers import (
            AutoencoderKLFlux2,
            FlowMatchEulerDiscreteScheduler,
            Flux2Transformer2DModel,
        )
        from transformers import Qwen2Tokenizer, Qwen3ForCausalLM

        return {"tokenizer": Qwen2Tokenizer.from_pretrained, "text_encoder": Qwen3ForCausalLM.from_pretrained,
                "transformer": Flux2Transformer2DModel.from_pretrained, "vae": AutoencoderKLFlux2.from_pretrained,
                "scheduler": FlowMatchEulerDiscreteScheduler.from_pretrained}

    @staticmethod
    def vae_downscale(vae: Any) -> int:
        """16: the VAE's 8 pixels per cell times the 2x2 patches the denoiser's latent is made of."""
        return 2 ** (len(vae.config.block_out_channels) - 1) * 2

    def tokenize(self, prompt: str) -> list[int]:
        """Qwen token ids of one prompt (no template)."""
        return list(self.tokenizer(prompt).input_ids)

    def set_schedule(self, steps: int, latent_shape: tuple[int, ...]) -> None:
        """As Flux2KleinPipeline: sigmas linspace(1, 1/N, N), mu from tokens and steps."""
        mu = empirical_mu(self.image_tokens(latent_shape), steps)
        self.scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)

    # ------------------------------------------------------------------ VAE
    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bn = self.vae.bn
        mean = bn.running_mean.view(1, -1, 1, 1).to(like.device, torch.float32)
        std = torch.sqrt(bn.running_var.view(1, -1, 1, 1).float() + self.vae.config.batch_norm_eps).to(like.device)
        return mean, std

    @no_grad
    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Normalized 2x2-patchified posterior mode (B, 128, H/16, W/16), float32, of images in [-1, 1]."""
        vae_latents.check_encodable(image, self.size_multiple, self.name)
        self._using(self.vae)
        z = self.vae.encode(image.to(self.device, self.dtype)).latent_dist.mode().float()
        b, c, h, w = z.shape
        patches = z.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, c * 4, h // 2, w // 2)
        mean, std = self._stats(patches)
        return (patches - mean) / std

    def to_vae_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """The denoiser's normalized patches -> the VAE's (B, 32, H/8, W/8) latent (the pipeline's 'latent' output)."""
        z = latents.to(self.device, torch.float32)
        mean, std = self._stats(z)
        z = z * std + mean
        b, c, h, w = z.shape
        return z.reshape(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c // 4, h * 2, w * 2)

    @no_grad
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (clamped, float32) from the denoiser's latents."""
        self._using(self.vae)
        return self.vae.decode(self.to_vae_latents(latents).to(self.dtype)).sample.float().clamp(-1, 1)

    # ------------------------------------------------------------------ conditioning
    @no_grad
    def encode_prompts(self, prompts: list[str]) -> Conditioning:
        """Qwen3's hidden states of ``text_layers`` side by side, per token of the chat-formatted prompt."""
        texts = [self.tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                    add_generation_prompt=True, enable_thinking=False)
                 for p in prompts]
        inputs = self.tokenizer(texts, return_tensors="pt", padding="max_length", truncation=True,
                                max_length=self.max_sequence_length)
        self._using(self.text_encoder)
        out = self.text_encoder(input_ids=inputs["input_ids"].to(self.device),
                                attention_mask=inputs["attention_mask"].to(self.device),
                                output_hidden_states=True, use_cache=False)
        states = torch.stack([out.hidden_states[k] for k in self.text_layers], dim=2)  # (B, L, layers, D)
        return Conditioning(states.flatten(2).to(self.dtype))

    @no_grad
    def predict(self, latents: torch.Tensor, timestep: Any, cond: Conditioning, *,
                guidance: Any = None) -> torch.Tensor:
        """Velocity (float32) of (B, 128, h, w) latents, the reference image's tokens appended when given."""
        self._using(self.transformer)
        b, _, h, w = latents.shape
        hidden = tokens_of(latents.to(self.device, self.dtype))
        ids = position_ids(b, 0, h, w, self.device)
        if "image" in cond.extras:
            photo = cond.extras["image"].to(self.device, self.dtype)
            hidden = torch.cat([hidden, tokens_of(photo)], dim=1)
            ids = torch.cat([ids, position_ids(b, IMAGE_T, *photo.shape[-2:], self.device)], dim=1)
        text = cond.embeddings.to(self.device, self.dtype)
        text_ids = torch.zeros(b, text.shape[1], 4, dtype=torch.long, device=self.device)
        text_ids[..., 3] = torch.arange(text.shape[1], device=self.device)  # (0, 0, 0, l)
        t = torch.as_tensor(timestep, device=self.device).reshape(-1).expand(b).to(self.dtype)
        out = self.transformer(hidden_states=hidden, timestep=t / 1000, guidance=None,
                               encoder_hidden_states=text, txt_ids=text_ids, img_ids=ids, return_dict=False)[0]
        return grid_of(out[:, : h * w].float(), h, w)

    def to_pipeline_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, 128, h, w) -> the (B, h * w, 128) tokens the diffusers pipeline loops over."""
        return tokens_of(latents)

    def from_pipeline_latents(self, latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The pipeline's tokens of an image of height x width pixels -> (B, 128, h, w)."""
        f = self.vae_scale_factor
        return grid_of(latents, height // f, width // f)
