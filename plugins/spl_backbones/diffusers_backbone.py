"""A Backbone made of diffusers/transformers parts: CLIP tokenizer and text encoder, UNet, VAE, LCM scheduler."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from spl_backbones import loading, vae_latents
from spl_backbones.devices import resolve_device, resolve_dtype
from spl_backbones.model_index import write_model_index
from spl_backbones.offload import PlacedModules
from spl_sdk.components import Backbone, Conditioning
from spl_sdk.components.base import ComponentOptions
from spl_sdk.errors import ConfigError
from spl_sdk.lazy import no_grad, torch


class DiffusersBackbone(PlacedModules, Backbone):
    """Stable-Diffusion-1.x-style latent diffusion in diffusers layout, driven by an LCM scheduler.

    Every method casts its inputs to the model's device and dtype; ``predict``,
    ``encode_image`` and ``decode_latents`` return float32 so the edit method's
    arithmetic stays in float32 even when the weights are float16.
    """

    default_model: ClassVar[str | None] = None
    family: ClassVar[str] = "sd15"
    prediction_type: ClassVar[str] = "epsilon"
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"epsilon", "alphas-cumprod", "lcm-schedule", "attention-processors", "unet-cross-attention"})
    default_working_size: ClassVar[int] = 512
    default_method: ClassVar[str] = "infedit"
    default_original_steps: ClassVar[int] = 50  # LCM's original_inference_steps (docs/method.md section 2)

    class Options(ComponentOptions):
        """The LCM schedule (docs/method.md section 2)."""

        original_steps: int = Field(50, ge=1, le=1000, description=(
            "LCM original_inference_steps of the schedule: the steps are picked among this many "
            "evenly spaced training timesteps (at least steps; --original-steps)."))

    def __init__(self, *, tokenizer: Any, text_encoder: Any, unet: Any, vae: Any, scheduler: Any,
                 device: torch.device, dtype: torch.dtype, cpu_offload: bool = False) -> None:
        self.tokenizer, self.text_encoder, self.unet, self.vae = tokenizer, text_encoder, unet, vae
        self.scheduler = scheduler
        self.device, self.dtype = device, dtype
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.offload_hooks: list[Any] = []
        for module in self.modules():
            module.requires_grad_(False).eval()
        self._place(cpu_offload)

    @property
    def denoiser(self) -> Any:
        """The UNet (``unet`` is the SD-style name of the same model)."""
        return self.unet

    def modules(self) -> list[torch.nn.Module]:
        """The torch modules in execution order (text encoder, UNet, VAE)."""
        return [self.text_encoder, self.unet, self.vae]

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, model: str | None = None, *, device: str = "auto", dtype: str = "auto",
             cpu_offload: bool = False) -> DiffusersBackbone:
        """Load from a Hub id (cache first, network only if reachable) or a local diffusers folder."""
        return cls.from_pretrained(model or cls.default_model, device=device, dtype=dtype,
                                   cpu_offload=cpu_offload)

    @classmethod
    def from_pretrained(cls, model: str | Path | None, *, device: str | torch.device = "auto",
                        dtype: str | torch.dtype = "auto", cpu_offload: bool = False,
                        **kwargs: Any) -> DiffusersBackbone:
        """Each component with ``from_pretrained(model, subfolder=...)``; errors as ModelNotFoundError."""
        from diffusers import AutoencoderKL, LCMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel

        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        source = loading.resolve_model(str(model), example=cls.default_model or str(model))
        hint = cls.download_hint(str(model))

        def part(loader: Any, subfolder: str, **kw: Any) -> Any:
            return loading.load_part(loader, source, subfolder, hint, **kw)

        def weights(loader: Any, subfolder: str, **kw: Any) -> Any:  # safetensors only by default
            return loading.load_weights(loader, source, subfolder, hint, **kw)

        with loading.quiet_transformers():
            parts = {
                "tokenizer": part(load_clip_tokenizer, "tokenizer"),
                "text_encoder": weights(CLIPTextModel.from_pretrained, "text_encoder", dtype=dt),
                "unet": weights(UNet2DConditionModel.from_pretrained, "unet", dtype=dt),
                "vae": weights(AutoencoderKL.from_pretrained, "vae", dtype=dt),
                # Any SD scheduler config (PNDM, DDIM, ...) carries the noise schedule LCM needs.
                "scheduler": part(LCMScheduler.from_pretrained, "scheduler"),
            }
            parts = cls.adapt(parts, source, **kwargs)
        return cls(**parts, device=dev, dtype=dt, cpu_offload=cpu_offload)

    @classmethod
    def download_hint(cls, model: str) -> str:
        """How to get missing weights, the end of the missing-weights sentence."""
        return loading.how_to_get(model)

    @classmethod
    def adapt(cls, parts: dict[str, Any], source: str | Path, **kwargs: Any) -> dict[str, Any]:
        """Hook for subclasses to change loaded components (e.g. fuse a LoRA) before placement."""
        if kwargs:
            raise TypeError(f"{cls.__name__}.from_pretrained got unexpected options {sorted(kwargs)}")
        return parts

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write every component in diffusers layout (unet/, vae/, text_encoder/, tokenizer/, scheduler/)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with loading.quiet_transformers():
            for name in ("unet", "vae", "text_encoder", "scheduler"):
                getattr(self, name).save_pretrained(folder / name)
        save_tokenizer(self.tokenizer, folder / "tokenizer")
        parts = {name: getattr(self, name) for name in loading.DIFFUSERS_SUBFOLDERS}
        write_model_index(folder, "LatentConsistencyModelPipeline",
                          {**parts, "safety_checker": None, "feature_extractor": None},
                          requires_safety_checker=False)
        return folder

    # ------------------------------------------------------------------ the edit method's interface
    @no_grad
    def encode_prompts(self, prompts: list[str]) -> Conditioning:
        """(B, 77, D) last hidden states, no extras; padded with the end token and cut at 77 tokens, as in SD 1.x."""
        ids = self.tokenizer(list(prompts), padding="max_length", truncation=True,
                             max_length=self.tokenizer.model_max_length, return_tensors="pt").input_ids
        self._using(self.text_encoder)
        return Conditioning(self.text_encoder(ids.to(self.device))[0].to(self.dtype))

    @no_grad
    def predict(self, latents: torch.Tensor, timestep: Any, cond: Conditioning, *,
                guidance: float | None = None) -> torch.Tensor:
        """One UNet call for the whole batch: float32 noise (``guidance`` is not an input here)."""
        self._using(self.unet)
        t = torch.as_tensor(timestep, device=self.device)
        out = self.unet(latents.to(self.device, self.dtype), t,
                        encoder_hidden_states=cond.embeddings.to(self.device, self.dtype)).sample
        return out.float()

    def predict_noise(self, latents: torch.Tensor, timestep: torch.Tensor | int,
                      embeddings: torch.Tensor | Conditioning) -> torch.Tensor:
        """Deprecated alias of :meth:`predict` taking bare embeddings."""
        warnings.warn("Backbone.predict_noise is deprecated; use predict(latents, t, cond)",
                      DeprecationWarning, stacklevel=2)
        cond = embeddings if isinstance(embeddings, Conditioning) else Conditioning(embeddings)
        return self.predict(latents, timestep, cond)

    def timesteps(self, steps: int, *, latent_shape: tuple[int, ...] = (), original_steps: int | None = None,
                  **kw: Any) -> list[int]:
        """The LCM schedule: ``steps`` of ``original_steps`` evenly spaced training timesteps."""
        own = getattr(getattr(self, "options", None), "original_steps", None)
        original = original_steps or own or self.default_original_steps
        # LCM picks its timesteps among original_steps evenly spaced ones (docs/method.md section 2)
        if steps > original:
            raise ConfigError(f"steps ({steps}) cannot exceed original_steps ({original}) of the LCM "
                              f"schedule; lower steps or raise the option {self.name}.original_steps (--original-steps).")
        self.scheduler.set_timesteps(num_inference_steps=steps, original_inference_steps=original)
        return [int(t) for t in self.scheduler.timesteps]

    @no_grad
    def encode_image(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """VAE latent times the scaling factor, float32: the posterior mean, or a sample drawn with ``generator``."""
        vae_latents.check_encodable(image, self.vae_scale_factor, self.name)
        self._using(self.vae)
        return vae_latents.encode(self.vae, image, self.device, self.vae.dtype, generator)

    @no_grad
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (clamped, float32) from scaled latents."""
        self._using(self.vae)
        return vae_latents.decode(self.vae, latents, self.device, self.vae.dtype)


def load_clip_tokenizer(model: str, **kwargs: Any) -> Any:
    """``CLIPTokenizer.from_pretrained`` that raises OSError for missing files instead of a stub.

    transformers 5 returns a 2-token tokenizer (ids 0 and 2) when vocab.json and
    merges.txt are absent, which would silently turn every prompt into noise.
    """
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(model, **kwargs)
    if len(tokenizer) <= 2 or tokenizer.eos_token not in tokenizer.get_vocab():
        raise OSError("no tokenizer files (vocab.json and merges.txt, or tokenizer.json) found")
    if tokenizer.model_max_length > 10_000:  # no tokenizer_config.json: SD 1.x's limit
        tokenizer.model_max_length = 77
    return tokenizer


def save_tokenizer(tokenizer: Any, folder: Path) -> None:
    """Save as SD repositories do (vocab.json, merges.txt, tokenizer_config.json), no tokenizer.json."""
    tokenizer.save_pretrained(folder)
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    if model.get("type") != "BPE":
        return  # not a BPE tokenizer: keep transformers' own files
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    (folder / "vocab.json").write_text(json.dumps(tokenizer.get_vocab(), ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (folder / "tokenizer.json").unlink(missing_ok=True)
