"""SDXL-class backbones: two CLIP text encoders, pooled text embeddings and size/crop time ids.

Prompts are encoded as diffusers' ``StableDiffusionXLPipeline.encode_prompt`` does:
the penultimate hidden states of both encoders concatenated (768 + 1280 = 2048 wide
in SDXL), the second encoder's projected pooled output as ``text_embeds``, and
time ids ``(height, width, 0, 0, height, width)`` of the working size (the
pipeline's default original size, crop and target size). An empty prompt, which
the edit uses as the negative prompt, becomes all zeros (embeddings and pooled)
when the model sets ``force_zeros_for_empty_prompt`` (SDXL base does), exactly as
the pipeline does when no negative prompt is given. See docs/sdxl.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from spl_backbones import loading
from spl_backbones.devices import resolve_device, resolve_dtype
from spl_backbones.diffusers_backbone import DiffusersBackbone, load_clip_tokenizer, save_tokenizer
from spl_backbones.model_index import write_model_index
from spl_sdk.components.backbone import Conditioning
from spl_sdk.lazy import no_grad, torch

SDXL_SUBFOLDERS = ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2",
                   "scheduler")
SDXL_BASE = "stabilityai/stable-diffusion-xl-base-1.0"
FP16_VAE = "madebyollin/sdxl-vae-fp16-fix"  # SDXL's VAE fine-tuned not to overflow in float16


class SDXLBackbone(DiffusersBackbone):
    """Stable Diffusion XL in diffusers layout (two text encoders), driven by an LCM scheduler."""

    family: ClassVar[str] = "sdxl"
    default_working_size: ClassVar[int] = 1024
    # Masks and the local blend read the 32x32 cross-attention maps: at 1024 px the latent is
    # 128x128 and SDXL only attends at 64x64 and 32x32 (docs/sdxl.md).
    attention_res: ClassVar[int] = 32
    default_model: ClassVar[str | None] = SDXL_BASE
    unet_subfolder: ClassVar[str] = "unet"

    class Options(DiffusersBackbone.Options):
        """Parts that replace the model's own, and the LCM schedule."""

        vae: str | None = Field(None, description=(
            f"Hub id or folder of another VAE; {FP16_VAE} runs in float16 without overflow "
            "(SDXL's own VAE is kept in float32 under float16)."))
        unet: str | None = Field(None, description="Hub id or folder of another UNet of the SDXL layout.")

    def __init__(self, *, tokenizer: Any, tokenizer_2: Any, text_encoder: Any, text_encoder_2: Any,
                 unet: Any, vae: Any, scheduler: Any, device: torch.device, dtype: torch.dtype,
                 cpu_offload: bool = False, zero_empty_prompt: bool = True) -> None:
        self.tokenizer_2, self.text_encoder_2 = tokenizer_2, text_encoder_2
        self.zero_empty_prompt = zero_empty_prompt
        super().__init__(tokenizer=tokenizer, text_encoder=text_encoder, unet=unet, vae=vae,
                         scheduler=scheduler, device=device, dtype=dtype, cpu_offload=cpu_offload)
        check_time_embedding(unet, text_encoder_2)

    def modules(self) -> list[torch.nn.Module]:
        """The torch modules in execution order (both text encoders, UNet, VAE)."""
        return [self.text_encoder, self.text_encoder_2, self.unet, self.vae]

    def module_dtype(self, module: torch.nn.Module) -> torch.dtype:
        """A VAE with ``force_upcast`` (SDXL's own overflows in float16) stays float32 under float16."""
        if module is self.vae and self.dtype == torch.float16 and getattr(
                self.vae.config, "force_upcast", False):
            return torch.float32
        return self.dtype

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, model: str | None = None, *, device: str = "auto", dtype: str = "auto",
             cpu_offload: bool = False, options: Any = None) -> DiffusersBackbone:
        """Load from a Hub id (cache first, network only if reachable) or a local diffusers folder."""
        # the parts to replace; the schedule's options (original_steps) are read when sampling
        schedule = set(DiffusersBackbone.Options.model_fields)
        extra = options.model_dump(exclude_none=True, exclude=schedule) if options is not None else {}
        return cls.from_pretrained(model or cls.default_model, device=device, dtype=dtype,
                                   cpu_offload=cpu_offload, **extra)

    @classmethod
    def required_subfolders(cls) -> tuple[str, ...]:
        """Subfolders a local model folder must have."""
        return SDXL_SUBFOLDERS

    @classmethod
    def from_pretrained(cls, model: str | Path | None, *, device: str | torch.device = "auto",
                        dtype: str | torch.dtype = "auto", cpu_offload: bool = False,
                        vae: str | Path | None = None, unet: str | Path | None = None,
                        **kwargs: Any) -> DiffusersBackbone:
        """Each component from ``model``; ``vae``/``unet`` replace one part (Hub id or folder).

        ``vae`` is how to run float16 without overflow: ``madebyollin/sdxl-vae-fp16-fix``.
        Missing weights raise ModelNotFoundError with one sentence saying how to get them.
        """
        from diffusers import AutoencoderKL, UNet2DConditionModel

        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        source = loading.resolve_model(str(model), cls.required_subfolders(),
                                       example=cls.default_model or str(model))
        loaders = cls.part_loaders(source, dt, cls.download_hint(str(model)))
        if vae is not None:  # loaders are lazy: the replaced part is never read
            loaders["vae"] = single_part(AutoencoderKL.from_pretrained, vae, "vae", dt, FP16_VAE)
        if unet is not None:
            loaders["unet"] = single_part(UNet2DConditionModel.from_pretrained, unet, "unet", dt,
                                          "latent-consistency/lcm-sdxl")
        with loading.quiet_transformers():
            parts = {name: load() for name, load in loaders.items()}
            parts = cls.adapt(parts, source, **kwargs)
        return cls(**parts, device=dev, dtype=dt, cpu_offload=cpu_offload,
                   zero_empty_prompt=zeros_for_empty_prompt(source))

    @classmethod
    def part_loaders(cls, source: str | Path, dtype: torch.dtype,
                     hint: str) -> dict[str, Callable[[], Any]]:
        """One loader per component, so that subclasses can swap one (LCM UNet) before anything loads."""
        from diffusers import AutoencoderKL, LCMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTextModelWithProjection

        def part(loader: Any, subfolder: str, **kw: Any) -> Callable[[], Any]:
            return lambda: loading.load_part(loader, source, subfolder, hint, **kw)

        def weights(loader: Any, subfolder: str) -> Callable[[], Any]:  # safetensors only by default
            return lambda: loading.load_weights(loader, source, subfolder, hint, dtype=dtype)

        return {
            "tokenizer": part(load_clip_tokenizer, "tokenizer"),
            "tokenizer_2": part(load_clip_tokenizer, "tokenizer_2"),
            "text_encoder": weights(CLIPTextModel.from_pretrained, "text_encoder"),
            "text_encoder_2": weights(CLIPTextModelWithProjection.from_pretrained, "text_encoder_2"),
            "unet": weights(UNet2DConditionModel.from_pretrained, cls.unet_subfolder),
            "vae": weights(AutoencoderKL.from_pretrained, "vae"),
            # SDXL ships an Euler config; it carries the noise schedule LCM needs.
            "scheduler": part(LCMScheduler.from_pretrained, "scheduler"),
        }

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write every component in SDXL's diffusers layout (plus model_index.json)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        names = {"unet": self.unet_subfolder, "vae": "vae", "text_encoder": "text_encoder",
                 "text_encoder_2": "text_encoder_2", "scheduler": "scheduler"}
        with loading.quiet_transformers():
            for attr, sub in names.items():
                getattr(self, attr).save_pretrained(folder / sub)
        save_tokenizer(self.tokenizer, folder / "tokenizer")
        save_tokenizer(self.tokenizer_2, folder / "tokenizer_2")
        parts = {name: getattr(self, name) for name in SDXL_SUBFOLDERS}
        write_model_index(folder, "StableDiffusionXLPipeline", parts,
                          force_zeros_for_empty_prompt=self.zero_empty_prompt)
        return folder

    # ------------------------------------------------------------------ the edit method's interface
    @no_grad
    def encode_prompts(self, prompts: list[str]) -> Conditioning:
        """(B, 77, D1 + D2) penultimate states of both encoders and the second one's pooled (B, P)."""
        hidden, pooled = [], None
        for tokenizer, encoder in ((self.tokenizer, self.text_encoder),
                                   (self.tokenizer_2, self.text_encoder_2)):
            ids = tokenizer(list(prompts), padding="max_length", truncation=True,
                            max_length=tokenizer.model_max_length, return_tensors="pt").input_ids
            self._using(encoder)
            out = encoder(ids.to(self.device), output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            pooled = getattr(out, "text_embeds", pooled)  # only the projection model has it
        embeddings = torch.cat(hidden, dim=-1).to(self.dtype)
        if pooled is None:
            raise TypeError("text_encoder_2 must be a CLIPTextModelWithProjection (pooled text_embeds)")
        pooled = pooled.to(self.dtype)
        if self.zero_empty_prompt:
            empty = torch.tensor([p == "" for p in prompts], device=embeddings.device)
            embeddings = embeddings.masked_fill(empty[:, None, None], 0.0)
            pooled = pooled.masked_fill(empty[:, None], 0.0)
        return Conditioning(embeddings, {"pooled": pooled})

    def time_ids(self, latent_hw: Sequence[int], batch: int) -> torch.Tensor:
        """(batch, 6) ``original size + crop top-left + target size`` for a latent of ``latent_hw``."""
        h, w = (int(s) * self.vae_scale_factor for s in latent_hw)
        return torch.tensor([[h, w, 0, 0, h, w]], dtype=self.dtype, device=self.device).repeat(batch, 1)

    @no_grad
    def predict(self, latents: torch.Tensor, timestep: torch.Tensor | int, cond: Conditioning, *,
                guidance: float | None = None) -> torch.Tensor:
        """One UNet call for the whole batch with SDXL's added conditioning; returns float32 noise.

        ``guidance`` is not an input of SDXL (its guidance is the classifier-free batch).
        """
        self._using(self.unet)
        batch = latents.shape[0]
        time_ids = cond.extras.get("time_ids")
        if time_ids is None:
            time_ids = self.time_ids(latents.shape[-2:], batch)
        if "pooled" not in cond.extras:
            raise ValueError(f"{self.name} needs the pooled text embedding: pass the Conditioning "
                             "from encode_prompts, not bare embeddings")
        added = {"text_embeds": cond.extras["pooled"].to(self.device, self.dtype),
                 "time_ids": time_ids.to(self.device, self.dtype)}
        t = torch.as_tensor(timestep, device=self.device)
        out = self.unet(latents.to(self.device, self.dtype), t,
                        encoder_hidden_states=cond.embeddings.to(self.device, self.dtype),
                        added_cond_kwargs=added).sample
        return out.float()


def check_time_embedding(unet: Any, text_encoder_2: Any) -> None:
    """The UNet's added embedding must take 6 time ids plus the pooled width, as the pipeline checks."""
    cfg = unet.config
    if getattr(cfg, "addition_embed_type", None) != "text_time":
        raise TypeError("an SDXL backbone needs a UNet with addition_embed_type='text_time'")
    expected = unet.add_embedding.linear_1.in_features
    passed = cfg.addition_time_embed_dim * 6 + text_encoder_2.config.projection_dim
    if expected != passed:
        raise TypeError(f"the UNet expects an added embedding of {expected} but time ids and the "
                        f"pooled text give {passed}; the UNet and text_encoder_2 do not belong together")


def zeros_for_empty_prompt(source: str | Path) -> bool:
    """``force_zeros_for_empty_prompt`` of the model's model_index.json (local or cached); True (SDXL base's) without one."""
    if isinstance(source, Path):
        index: Path | None = source / "model_index.json"
    else:
        from huggingface_hub import hf_hub_download

        try:  # cache only: the parts themselves do not need this file
            index = Path(hf_hub_download(source, "model_index.json", local_files_only=True))
        except Exception:  # not cached (or not a pipeline repository): keep SDXL base's setting
            index = None
    if index is not None and index.is_file():
        return bool(json.loads(index.read_text()).get("force_zeros_for_empty_prompt", True))
    return True


def single_part(loader: Callable[..., Any], model: str | Path, subfolder: str, dtype: torch.dtype,
                example: str, hint: str | None = None) -> Callable[[], Any]:
    """Lazy loader of one model from a repository or folder of its own (config.json at its root).

    A local folder that holds a ``subfolder``/ (a whole pipeline copy) is read from there.
    """

    def load() -> Any:
        where = loading.resolve_model(str(model), subfolders=(), example=example)
        sub = subfolder if isinstance(where, Path) and (where / subfolder).is_dir() else None
        return loading.load_weights(loader, where, sub, hint or loading.how_to_get(str(model)), dtype=dtype)

    return load
