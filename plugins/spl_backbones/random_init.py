"""Backbones built in code with seeded random weights from config dicts: no download, same weights every time."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from spl_backbones.devices import resolve_device, resolve_dtype
from spl_backbones.diffusers_backbone import DiffusersBackbone
from spl_backbones.tokenizer import build_clip_tokenizer
from spl_sdk.errors import ModelNotFoundError
from spl_sdk.lazy import torch

# The noise schedule of Stable Diffusion 1.x, which LCM distillation keeps.
SD_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "original_inference_steps": 50,
    "prediction_type": "epsilon", "set_alpha_to_one": True, "clip_sample": False,
}


class BuiltInCode:
    """Mixin for backbones built in code: ``load`` builds them, or reloads a folder their save_pretrained wrote."""

    name: ClassVar[str]

    @classmethod
    def built_dtype(cls, dtype: str, device: torch.device) -> torch.dtype:
        """The dtype a built model runs in for the user's ``dtype`` setting."""
        return resolve_dtype(dtype, device)

    @classmethod
    def load(cls, model: str | None = None, *, device: str = "auto", dtype: str = "auto",
             cpu_offload: bool = False, **_: Any) -> Any:
        """Build in code; ``model`` may name a folder written by :meth:`save_pretrained` to reload it."""
        if model:
            if not Path(model).expanduser().is_dir():
                raise ModelNotFoundError(
                    f"backbone '{cls.name}' is built in code, so model must be unset or a folder "
                    f"written by its save_pretrained(), and '{model}' is not a folder; drop --model.")
            return cls.from_pretrained(model, device=device, dtype=dtype,  # type: ignore[attr-defined]
                                       cpu_offload=cpu_offload)
        dev = resolve_device(device)
        return cls(**cls.build_components(), device=dev,  # type: ignore[attr-defined,call-arg]
                   dtype=cls.built_dtype(dtype, dev), cpu_offload=cpu_offload)


class RandomBackbone(BuiltInCode, DiffusersBackbone):
    """Base of in-code backbones: subclasses give the UNet, VAE and CLIP text-encoder configs."""

    seed: ClassVar[int] = 0
    unet_config: ClassVar[dict[str, Any]]
    vae_config: ClassVar[dict[str, Any]]
    text_config: ClassVar[dict[str, Any]]

    @classmethod
    def build_components(cls) -> dict[str, Any]:
        """Tokenizer, text encoder, UNet, VAE and scheduler; each model seeded on its own (order-free)."""
        from diffusers import AutoencoderKL, LCMScheduler, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        def seeded(offset: int, build: Any) -> Any:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cls.seed + offset)
                return build()

        return {
            "tokenizer": build_clip_tokenizer(),
            "text_encoder": seeded(0, lambda: CLIPTextModel(CLIPTextConfig(**cls.text_config))),
            "unet": seeded(1, lambda: UNet2DConditionModel(**cls.unet_config)),
            "vae": seeded(2, lambda: AutoencoderKL(**cls.vae_config)),
            "scheduler": LCMScheduler(**SD_SCHEDULER_CONFIG),
        }
