"""FLUX.1 Kontext [dev] (``flux-kontext-dev``): FLUX.1 conditioned on the photo for instruction edits.

The transformer is FLUX.1's. ``FluxKontextPipeline`` encodes the photo with the VAE
(posterior mode), packs it like the noisy latent and appends its tokens to the
latent sequence with position ids whose first coordinate is 1 (0 for the latent);
the velocity is read from the first (latent) tokens of the output. Text is FLUX.1's
(CLIP pooled + T5), guidance is embedded (3.5 by default) and the schedule is FLUX's
(sigmas linspace(1, 1/N, N), shift mu from the latent's token count).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field

from spl_backbones.flux import FluxDev, image_ids, pack, unpack
from spl_backbones.quantize import Quantization
from spl_sdk.components.backbone import Conditioning
from spl_sdk.components.base import ComponentOptions
from spl_sdk.lazy import no_grad, torch

INSTRUCT_CAPABILITIES = frozenset({"flow", "attention-processors", "embedded-guidance", "image-condition"})


class InstructOptions(ComponentOptions):
    """Load-time options of the instruction-edit backbones."""

    quantize: Quantization | None = Field(None, description=(
        "Load the transformer quantized with bitsandbytes ('nf4' 4-bit or 'int8'); CUDA GPUs only."))


class ReferenceLatent:
    """Instruction conditioning of models that read the photo as a reference latent (Kontext, FLUX.2)."""

    @no_grad
    def encode_instruction(self, prompts: list[str], image: torch.Tensor | None,
                           latent: torch.Tensor) -> Conditioning:
        """The prompts' conditioning plus the photo's latent (``extras["image"]``), one row per prompt."""
        cond = self.encode_prompts(prompts)  # type: ignore[attr-defined]
        cond.extras["image"] = latent.float().expand(len(prompts), -1, -1, -1).to(self.device)  # type: ignore[attr-defined]
        return cond


class FluxKontextDev(ReferenceLatent, FluxDev):
    """FLUX.1 Kontext [dev]: 12B instruction-edit flow transformer conditioned on the photo; gated on the Hub."""

    name: ClassVar[str] = "flux-kontext-dev"
    family: ClassVar[str] = "flux-kontext"
    default_model: ClassVar[str | None] = "black-forest-labs/FLUX.1-Kontext-dev"
    pipeline_class: ClassVar[str] = "FluxKontextPipeline"
    pipeline_classes: ClassVar[tuple[str, ...]] = ("FluxKontextPipeline",)
    capabilities: ClassVar[frozenset[str]] = INSTRUCT_CAPABILITIES
    default_method: ClassVar[str] = "instruct"
    default_steps: ClassVar[int] = 28  # FluxKontextPipeline's num_inference_steps default
    Options = InstructOptions

    @no_grad
    def predict(self, latents: torch.Tensor, timestep: Any, cond: Conditioning, *,
                guidance: float | Sequence[float] | torch.Tensor | None = None) -> torch.Tensor:
        """Velocity (float32) of (B, 16, h, w) latents, the photo's tokens appended when ``cond`` has them."""
        if "image" not in cond.extras:
            return super().predict(latents, timestep, cond, guidance=guidance)
        self._using(self.transformer)
        b, _, h, w = latents.shape
        photo = cond.extras["image"].to(self.device, self.dtype)
        ph, pw = photo.shape[-2:]
        photo_ids = image_ids(ph, pw, self.device, self.dtype)
        photo_ids[:, 0] = 1  # the condition image's tokens are told apart by the first id
        tokens = pack(latents.to(self.device, self.dtype))
        t = torch.as_tensor(timestep, device=self.device).reshape(-1).expand(b).to(self.dtype)
        txt_ids = torch.zeros(cond.embeddings.shape[1], 3, device=self.device, dtype=self.dtype)
        out = self.transformer(hidden_states=torch.cat([tokens, pack(photo)], dim=1), timestep=t / 1000,
                               guidance=self._guidance(guidance, b),
                               pooled_projections=cond.extras["pooled"].to(self.device, self.dtype),
                               encoder_hidden_states=cond.embeddings.to(self.device, self.dtype),
                               txt_ids=txt_ids,
                               img_ids=torch.cat([image_ids(h, w, self.device, self.dtype), photo_ids]),
                               return_dict=False)[0]
        return unpack(out[:, : tokens.shape[1]].float(), h, w)
