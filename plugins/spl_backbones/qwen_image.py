"""Qwen-Image-Edit (``qwen-image-edit``): the Plus pipeline's 20B MMDiT conditioned on the photo.

As ``QwenImageEditPlusPipeline``: the instruction is written into Qwen-Image-Edit's
chat template after a picture marker, and Qwen2.5-VL reads it together with the photo
(resized to about 384 x 384 pixels); its last hidden states, minus the template's first
64 tokens, condition the transformer. The photo's VAE latent (about 1024 x 1024 pixels,
normalized per channel by the VAE's ``latents_mean``/``latents_std``) is packed into
2x2 patches and appended to the latent sequence, described by ``img_shapes``. The model
has no embedded guidance: true classifier-free guidance against a negative prompt,
with the combined velocity rescaled to the conditional one's norm per token.
At the contract level latents are (B, 16, h, w); the VAE itself works on video
tensors with one frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

from spl_backbones import vae_latents
from spl_backbones.flow_backbone import FlowBackbone
from spl_backbones.flux import FluxBackbone, pack, unpack
from spl_backbones.kontext import InstructOptions
from spl_sdk.components.backbone import Conditioning
from spl_sdk.lazy import no_grad, torch

# Qwen-Image-Edit's system prompt and the number of template tokens the pipeline drops (the model's own)
PROMPT_TEMPLATE = (
    "<|im_start|>system\nDescribe the key features of the input image (color, shape, size, texture, objects, "
    "background), then explain how the user's text instruction should alter or modify the image. Generate a new "
    "image that meets the user's requirements while maintaining consistency with the original input where "
    "appropriate.<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n")
TEMPLATE_START = 64
PICTURE = "Picture 1: <|vision_start|><|image_pad|><|vision_end|>"


def area_dimensions(area: int, ratio: float, multiple: int = 32) -> tuple[int, int]:
    """(height, width) of about ``area`` pixels with width / height = ``ratio``, multiples of ``multiple``."""
    width = math.sqrt(area * ratio)
    return round(width / ratio / multiple) * multiple, round(width / multiple) * multiple


class QwenImageEdit(FlowBackbone):
    """Qwen-Image-Edit (2511 by default; 2509 with --model): 20B MMDiT + Qwen2.5-VL, instruction edits."""

    name: ClassVar[str] = "qwen-image-edit"
    family: ClassVar[str] = "qwen-image-edit"
    default_model: ClassVar[str | None] = "Qwen/Qwen-Image-Edit-2511"
    pipeline_class: ClassVar[str] = "QwenImageEditPlusPipeline"
    pipeline_classes: ClassVar[tuple[str, ...]] = ("QwenImageEditPlusPipeline",)
    capabilities: ClassVar[frozenset[str]] = frozenset({"flow", "attention-processors", "image-condition"})
    default_method: ClassVar[str] = "instruct"
    default_steps: ClassVar[int] = 40  # the model card's setting
    default_guidance: ClassVar[float] = 4.0  # true_cfg_scale, against the negative prompt " "
    negative_prompt: ClassVar[str] = " "
    tokenizer_parts: ClassVar[tuple[str, ...]] = ("tokenizer", "processor")
    model_parts: ClassVar[tuple[str, ...]] = ("text_encoder", "transformer", "vae")
    condition_area: ClassVar[int] = 384 * 384  # pixels of the photo Qwen2.5-VL sees
    vae_area: ClassVar[int] = 1024 * 1024  # pixels of the photo whose latent conditions the transformer
    Options = InstructOptions
    set_schedule = FluxBackbone.set_schedule  # sigmas linspace(1, 1/N, N), mu from the token count

    @classmethod
    def part_loaders(cls) -> dict[str, Callable[..., Any]]:
        """Diffusers/transformers classes of each subfolder of a Qwen-Image-Edit repository."""
        from diffusers import (
            AutoencoderKLQwenImage,
            FlowMatchEulerDiscreteScheduler,
            QwenImageTransformer2DModel,
        )
        from transformers import (
            Qwen2_5_VLForConditionalGeneration,
            Qwen2Tokenizer,
            Qwen2VLProcessor,
        )

        return {"tokenizer": Qwen2Tokenizer.from_pretrained, "processor": Qwen2VLProcessor.from_pretrained,
                "text_encoder": Qwen2_5_VLForConditionalGeneration.from_pretrained,
                "transformer": QwenImageTransformer2DModel.from_pretrained,
                "vae": AutoencoderKLQwenImage.from_pretrained,
                "scheduler": FlowMatchEulerDiscreteScheduler.from_pretrained}

    @staticmethod
    def vae_downscale(vae: Any) -> int:
        """8: one spatial downsampling per entry of the video VAE's ``temperal_downsample``."""
        return 2 ** len(vae.temperal_downsample)

    def tokenize(self, prompt: str) -> list[int]:
        """Qwen2 token ids of one prompt (no template)."""
        return list(self.tokenizer(prompt).input_ids)

    # ------------------------------------------------------------------ VAE
    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.vae.config
        shape = (1, cfg.z_dim, 1, 1)
        return (torch.tensor(cfg.latents_mean).view(shape).to(like.device, torch.float32),
                torch.tensor(cfg.latents_std).view(shape).to(like.device, torch.float32))

    @no_grad
    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """(posterior mode - latents_mean) / latents_std of images in [-1, 1]; float32 (B, 16, h, w)."""
        vae_latents.check_encodable(image, self.size_multiple, self.name)
        self._using(self.vae)
        latent = self.vae.encode(image.to(self.device, self.dtype).unsqueeze(2)).latent_dist.mode()[:, :, 0].float()
        mean, std = self._stats(latent)
        return (latent - mean) / std

    @no_grad
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (clamped, float32) from normalized latents."""
        self._using(self.vae)
        z = latents.to(self.device, torch.float32)
        mean, std = self._stats(z)
        frames = self.vae.decode((z * std + mean).to(self.dtype).unsqueeze(2)).sample
        return frames[:, :, 0].float().clamp(-1, 1)

    # ------------------------------------------------------------------ conditioning
    def _pil(self, image: torch.Tensor) -> Any:
        from spl_sdk.imageio import tensor_to_pil

        return tensor_to_pil(image[:1].float().cpu())

    def _photo_latent(self, image: torch.Tensor | None, latent: torch.Tensor) -> torch.Tensor:
        """The photo's latent at the pipeline's VAE size (about ``vae_area`` pixels); ``latent`` when it is that."""
        if image is None:
            return latent
        h, w = image.shape[-2:]
        size = area_dimensions(self.vae_area, w / h)
        if size == (h, w):
            return latent
        from PIL import Image

        from spl_sdk.imageio import pil_to_tensor

        resized = self._pil(image).resize((size[1], size[0]), Image.Resampling.LANCZOS)
        return self.encode_image(pil_to_tensor(resized))

    @no_grad
    def encode_prompts(self, prompts: list[str]) -> Conditioning:
        """Qwen2.5-VL states of each prompt alone (no photo), with a token mask."""
        return self._encode_text(prompts, None)

    @no_grad
    def encode_instruction(self, prompts: list[str], image: torch.Tensor | None,
                           latent: torch.Tensor) -> Conditioning:
        """Qwen2.5-VL states of each prompt read with the photo, a token mask, and the photo's latent."""
        if image is None:
            image = self.decode_latents(latent)
        from PIL import Image

        h, w = image.shape[-2:]
        ch, cw = area_dimensions(self.condition_area, w / h)
        cond = self._encode_text(prompts, self._pil(image).resize((cw, ch), Image.Resampling.LANCZOS))
        photo = self._photo_latent(image, latent).float().to(self.device)
        cond.extras["image"] = photo.expand(len(prompts), -1, -1, -1)
        return cond

    def _encode_text(self, prompts: list[str], seen: Any) -> Conditioning:
        self._using(self.text_encoder)
        states = []
        for prompt in prompts:  # one at a time, as the pipeline (the padding differs per prompt)
            text = PROMPT_TEMPLATE.format((PICTURE if seen is not None else "") + prompt)
            inputs = self.processor(text=[text], images=[seen] if seen is not None else None, padding=True,
                                    return_tensors="pt").to(self.device)
            out = self.text_encoder(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                    pixel_values=inputs.get("pixel_values"),
                                    image_grid_thw=inputs.get("image_grid_thw"), output_hidden_states=True)
            hidden = out.hidden_states[-1][0][inputs["attention_mask"][0].bool()]
            states.append(hidden[TEMPLATE_START:].to(self.dtype))
        longest = max(s.shape[0] for s in states)
        embeddings = torch.stack([torch.nn.functional.pad(s, (0, 0, 0, longest - s.shape[0])) for s in states])
        mask = torch.stack([(torch.arange(longest, device=self.device) < s.shape[0]).long() for s in states])
        return Conditioning(embeddings, {"mask": mask})

    @no_grad
    def predict(self, latents: torch.Tensor, timestep: Any, cond: Conditioning, *,
                guidance: Any = None) -> torch.Tensor:
        """Velocity (float32) of (B, 16, h, w) latents with the photo's tokens appended (one call per row)."""
        self._using(self.transformer)
        rows = []
        for i in range(latents.shape[0]):  # rows may differ in text length; the pipeline runs them apart
            row = cond.rows([i])
            length = int(row.extras["mask"].sum())
            rows.append(self._predict_row(latents[i:i + 1], timestep, row.embeddings[:, :length],
                                          row.extras.get("image")))
        return torch.cat(rows)

    def _predict_row(self, latents: torch.Tensor, timestep: Any, text: torch.Tensor,
                     photo: torch.Tensor | None) -> torch.Tensor:
        _, _, h, w = latents.shape
        tokens = pack(latents.to(self.device, self.dtype))
        hidden, shapes = tokens, [(1, h // 2, w // 2)]
        if photo is not None:  # the photo's tokens follow the latent's, described by their own shape
            hidden = torch.cat([tokens, pack(photo.to(self.device, self.dtype))], dim=1)
            shapes.append((1, photo.shape[-2] // 2, photo.shape[-1] // 2))
        t = torch.as_tensor(timestep, device=self.device).reshape(-1).expand(1).to(self.dtype)
        out = self.transformer(hidden_states=hidden, timestep=t / 1000, guidance=None,
                               encoder_hidden_states_mask=None, encoder_hidden_states=text.to(self.device, self.dtype),
                               img_shapes=[shapes], return_dict=False)[0]
        return unpack(out[:, : tokens.shape[1]].float(), h, w)

    def combine_guidance(self, cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
        """True CFG u + s (c - u), rescaled per packed token to the conditional velocity's norm."""
        h, w = cond.shape[-2:]
        c, u = pack(cond), pack(uncond)
        combined = u + scale * (c - u)
        combined = combined * (c.norm(dim=-1, keepdim=True) / combined.norm(dim=-1, keepdim=True))
        return unpack(combined, h, w)

    def to_pipeline_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, 16, h, w) -> the packed (B, h/2 * w/2, 64) latents of the diffusers pipeline's loop."""
        return pack(latents)

    def from_pipeline_latents(self, latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The pipeline's packed latents of an image of height x width pixels -> (B, 16, h, w)."""
        f = self.vae_scale_factor
        return unpack(latents, 2 * (height // (f * 2)), 2 * (width // (f * 2)))
