"""FLUX.1 (``flux-dev``, ``flux-schnell``): CLIP pooled + T5, a packed-latent transformer, 16-channel VAE.

At the contract level latents are (B, 16, h, w); ``predict`` packs them into
2x2 patches (B, h/2 * w/2, 64) with their image ids and unpacks the velocity,
as ``FluxPipeline`` does around its transformer call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from spl_backbones.diffusers_backbone import load_clip_tokenizer
from spl_backbones.flow_backbone import FlowBackbone, calculate_shift
from spl_backbones.sd3 import load_t5_tokenizer
from spl_sdk.components.backbone import Conditioning
from spl_sdk.lazy import no_grad, torch
from spl_sdk.lazy import numpy as np


def pack(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h/2 * w/2, 4C): 2x2 patches, row-major, channels then patch position."""
    b, c, h, w = latents.shape
    x = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`pack` for a latent of h x w cells."""
    b, _, d = tokens.shape
    x = tokens.view(b, h // 2, w // 2, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, d // 4, h, w)


def image_ids(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(h/2 * w/2, 3) positions (0, row, column) of the packed tokens, for the rotary embedding."""
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] += torch.arange(h // 2)[:, None]
    ids[..., 2] += torch.arange(w // 2)[None, :]
    return ids.reshape(-1, 3).to(device=device, dtype=dtype)


class FluxBackbone(FlowBackbone):
    """FLUX.1 family base: CLIP pooled output + T5 tokens, packed latents, resolution-dependent shift."""

    family: ClassVar[str] = "flux"
    pipeline_class: ClassVar[str] = "FluxPipeline"
    # diffusers pipelines whose latents SPLCallback reads through this class (packed 2x2 patches)
    pipeline_classes: ClassVar[tuple[str, ...]] = ("FluxPipeline", "FluxImg2ImgPipeline")
    tokenizer_parts: ClassVar[tuple[str, ...]] = ("tokenizer", "tokenizer_2")
    model_parts: ClassVar[tuple[str, ...]] = ("text_encoder", "text_encoder_2", "transformer", "vae")
    t5_parts: ClassVar[tuple[str, str]] = ("tokenizer_2", "text_encoder_2")
    default_guidance: ClassVar[float] = 3.5  # FluxPipeline's guidance_scale default (dev)

    @classmethod
    def part_loaders(cls) -> dict[str, Callable[..., Any]]:
        """Diffusers/transformers classes of each subfolder of a FLUX.1 repository."""
        from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
        from transformers import CLIPTextModel, T5EncoderModel

        return {"tokenizer": load_clip_tokenizer, "tokenizer_2": load_t5_tokenizer,
                "text_encoder": CLIPTextModel.from_pretrained,
                "text_encoder_2": T5EncoderModel.from_pretrained,
                "transformer": FluxTransformer2DModel.from_pretrained,
                "vae": AutoencoderKL.from_pretrained,
                "scheduler": FlowMatchEulerDiscreteScheduler.from_pretrained}

    @property
    def embedded_guidance(self) -> bool:
        """True for guidance-distilled models (FLUX.1-dev): guidance is a transformer input."""
        return bool(self.transformer.config.guidance_embeds)

    def set_schedule(self, steps: int, latent_shape: tuple[int, ...]) -> None:
        """As FluxPipeline: sigmas linspace(1, 1/N, N), mu from the packed token count."""
        cfg = self.scheduler.config
        sigmas = None if cfg.get("use_flow_sigmas", False) else np.linspace(1.0, 1 / steps, steps)
        mu = calculate_shift(self.image_tokens(latent_shape), cfg.get("base_image_seq_len", 256),
                             cfg.get("max_image_seq_len", 4096), cfg.get("base_shift", 0.5),
                             cfg.get("max_shift", 1.15))
        if sigmas is None:
            self.scheduler.set_timesteps(num_inference_steps=steps, mu=mu)
        else:
            self.scheduler.set_timesteps(sigmas=sigmas, mu=mu)

    @no_grad
    def encode_prompts(self, prompts: list[str]) -> Conditioning:
        """T5 token states as embeddings, CLIP's pooled output as ``extras["pooled"]``."""
        prompts = list(prompts)
        ids = self._clip_ids(self.tokenizer, prompts)
        self._using(self.text_encoder)
        pooled = self.text_encoder(ids, output_hidden_states=False).pooler_output.to(self.dtype)
        t5 = self._t5(self.tokenizer_2, self.text_encoder_2, prompts)
        return Conditioning(t5, {"pooled": pooled})

    def _guidance(self, guidance: float | Sequence[float] | torch.Tensor | None, batch: int) -> Any:
        if not self.embedded_guidance:
            return None
        g = self.default_guidance if guidance is None else guidance
        g = torch.as_tensor(g, dtype=torch.float32, device=self.device).reshape(-1)
        return g.expand(batch) if g.numel() == 1 else g

    @no_grad
    def predict(self, latents: torch.Tensor, timestep: Any, cond: Conditioning, *,
                guidance: float | Sequence[float] | torch.Tensor | None = None) -> torch.Tensor:
        """Velocity (float32) of (B, 16, h, w) latents; ``guidance`` per batch or per row (dev only)."""
        self._using(self.transformer)
        b, _, h, w = latents.shape
        t = torch.as_tensor(timestep, device=self.device).reshape(-1).expand(b).to(self.dtype)
        txt_ids = torch.zeros(cond.embeddings.shape[1], 3, device=self.device, dtype=self.dtype)
        out = self.transformer(hidden_states=pack(latents.to(self.device, self.dtype)), timestep=t / 1000,
                               guidance=self._guidance(guidance, b),
                               pooled_projections=cond.extras["pooled"].to(self.device, self.dtype),
                               encoder_hidden_states=cond.embeddings.to(self.device, self.dtype),
                               txt_ids=txt_ids, img_ids=image_ids(h, w, self.device, self.dtype),
                               return_dict=False)[0]
        return unpack(out.float(), h, w)

    def to_pipeline_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, 16, h, w) -> the packed (B, h/2 * w/2, 64) latents the diffusers pipeline loops over."""
        return pack(latents)

    def from_pipeline_latents(self, latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The pipeline's packed latents of an image of height x width pixels -> (B, 16, h, w)."""
        f = self.vae_scale_factor
        return unpack(latents, 2 * (height // (f * 2)), 2 * (width // (f * 2)))


class FluxDev(FluxBackbone):
    """FLUX.1 [dev]: 12B guidance-distilled flow transformer (embedded guidance); gated on the Hub."""

    name: ClassVar[str] = "flux-dev"
    default_model: ClassVar[str | None] = "black-forest-labs/FLUX.1-dev"
    gated: ClassVar[bool] = True
    max_sequence_length: ClassVar[int] = 512
    capabilities: ClassVar[frozenset[str]] = frozenset({"flow", "attention-processors", "embedded-guidance"})


class FluxSchnell(FluxBackbone):
    """FLUX.1 [schnell]: 12B timestep-distilled flow transformer (few steps, no guidance), Apache-2.0."""

    name: ClassVar[str] = "flux-schnell"
    default_model: ClassVar[str | None] = "black-forest-labs/FLUX.1-schnell"
    max_sequence_length: ClassVar[int] = 256
