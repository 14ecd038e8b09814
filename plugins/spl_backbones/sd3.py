"""Stable Diffusion 3 / 3.5 (``sd35-medium``): two CLIP encoders + T5, an MMDiT transformer, 16-channel VAE."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from spl_backbones.diffusers_backbone import load_clip_tokenizer
from spl_backbones.flow_backbone import FlowBackbone
from spl_sdk.components.backbone import Conditioning
from spl_sdk.lazy import no_grad, torch


def load_t5_tokenizer(model: str, **kwargs: Any) -> Any:
    """``T5Tokenizer.from_pretrained`` that raises OSError for missing files instead of a stub."""
    from transformers import T5Tokenizer

    tokenizer = T5Tokenizer.from_pretrained(model, **kwargs)
    if len(tokenizer) <= 3:
        raise OSError("no T5 tokenizer files (spiece.model or tokenizer.json) found")
    return tokenizer


class SD3Backbone(FlowBackbone):
    """Stable Diffusion 3.5 Medium (flow matching, MMDiT); gated: accept the license on the Hub."""

    name: ClassVar[str] = "sd35-medium"
    family: ClassVar[str] = "sd3"
    default_model: ClassVar[str | None] = "stabilityai/stable-diffusion-3.5-medium"
    pipeline_class: ClassVar[str] = "StableDiffusion3Pipeline"
    pipeline_classes: ClassVar[tuple[str, ...]] = ("StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline")
    gated: ClassVar[bool] = True
    max_sequence_length: ClassVar[int] = 256
    tokenizer_parts: ClassVar[tuple[str, ...]] = ("tokenizer", "tokenizer_2", "tokenizer_3")
    model_parts: ClassVar[tuple[str, ...]] = ("text_encoder", "text_encoder_2", "text_encoder_3",
                                              "transformer", "vae")
    optional_parts: ClassVar[tuple[str, ...]] = ("tokenizer_3", "text_encoder_3")
    t5_parts: ClassVar[tuple[str, str]] = ("tokenizer_3", "text_encoder_3")

    @classmethod
    def part_loaders(cls) -> dict[str, Callable[..., Any]]:
        """Diffusers/transformers classes of each subfolder of an SD3 repository."""
        from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
        from transformers import CLIPTextModelWithProjection, T5EncoderModel

        return {"tokenizer": load_clip_tokenizer, "tokenizer_2": load_clip_tokenizer,
                "tokenizer_3": load_t5_tokenizer,
                "text_encoder": CLIPTextModelWithProjection.from_pretrained,
                "text_encoder_2": CLIPTextModelWithProjection.from_pretrained,
                "text_encoder_3": T5EncoderModel.from_pretrained,
                "transformer": SD3Transformer2DModel.from_pretrained,
                "vae": AutoencoderKL.from_pretrained,
                "scheduler": FlowMatchEulerDiscreteScheduler.from_pretrained}

    def _clip(self, tokenizer: Any, encoder: Any, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self._clip_ids(tokenizer, prompts)
        self._using(encoder)
        out = encoder(ids, output_hidden_states=True)
        # penultimate hidden states, projected pooled output (as StableDiffusion3Pipeline)
        return out.hidden_states[-2].to(self.dtype), out[0].to(self.dtype)

    @no_grad
    def encode_prompts(self, prompts: list[str]) -> Conditioning:
        """Tokens: both CLIPs' penultimate states side by side (zero-padded to T5's width), then T5's."""
        prompts = list(prompts)
        h1, p1 = self._clip(self.tokenizer, self.text_encoder, prompts)
        h2, p2 = self._clip(self.tokenizer_2, self.text_encoder_2, prompts)
        width = self.transformer.config.joint_attention_dim
        if self.text_encoder_3 is not None:
            t5 = self._t5(self.tokenizer_3, self.text_encoder_3, prompts)
        else:  # SD3 runs without T5: zeros in its place, as the diffusers pipeline
            t5 = torch.zeros(len(prompts), self.max_sequence_length, width, device=self.device,
                             dtype=self.dtype)
        clip = torch.nn.functional.pad(torch.cat([h1, h2], dim=-1), (0, t5.shape[-1] - h1.shape[-1] - h2.shape[-1]))
        return Conditioning(torch.cat([clip, t5], dim=-2), {"pooled": torch.cat([p1, p2], dim=-1)})

    @no_grad
    def predict(self, latents: torch.Tensor, timestep: Any, cond: Conditioning, *,
                guidance: Any = None) -> torch.Tensor:
        """Velocity (float32) for a batch of (B, 16, h, w) latents at scheduler timestep ``timestep``."""
        self._using(self.transformer)
        batch = latents.shape[0]
        t = torch.as_tensor(timestep, device=self.device).float().reshape(-1).expand(batch)
        out = self.transformer(hidden_states=latents.to(self.device, self.dtype), timestep=t,
                               encoder_hidden_states=cond.embeddings.to(self.device, self.dtype),
                               pooled_projections=cond.extras["pooled"].to(self.device, self.dtype),
                               return_dict=False)[0]
        return out.float()
