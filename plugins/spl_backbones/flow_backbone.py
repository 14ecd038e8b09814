"""The shared part of flow-matching backbones (SD3, FLUX): parts, placement, VAE, schedule, save/load.

A flow model predicts the velocity v of the path z_t = (1 - t) x0 + t n
(t = sigma in [0, 1], scheduler timestep = 1000 t). Families differ in their text
encoders, their transformer's inputs and how the scheduler's shift is chosen;
subclasses give those, this class does the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from spl_backbones import loading, vae_latents
from spl_backbones.devices import resolve_device, resolve_dtype
from spl_backbones.model_index import write_model_index
from spl_backbones.offload import PlacedModules
from spl_backbones.quantize import quantization_config
from spl_sdk.components import Backbone
from spl_sdk.errors import ConfigError
from spl_sdk.lazy import no_grad, torch


def calculate_shift(seq_len: int, base_seq_len: int = 256, max_seq_len: int = 4096,
                    base_shift: float = 0.5, max_shift: float = 1.15) -> float:
    """The resolution-dependent shift mu: linear in the number of image tokens (FLUX, SD3 dynamic)."""
    slope = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return seq_len * slope + base_shift - slope * base_seq_len


def flow_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``auto`` is bfloat16 on CUDA (T5 overflows in float16) and float32 elsewhere."""
    if isinstance(dtype, str) and dtype.strip().lower() in ("", "auto") and device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return resolve_dtype(dtype, device)


class FlowBackbone(PlacedModules, Backbone):
    """A flow-matching latent model in diffusers layout: text encoders, transformer, 16-channel VAE."""

    prediction_type: ClassVar[str] = "flow"
    capabilities: ClassVar[frozenset[str]] = frozenset({"flow", "attention-processors"})
    default_method: ClassVar[str] = "flowedit"
    default_working_size: ClassVar[int] = 1024
    pipeline_class: ClassVar[str] = ""
    pipeline_classes: ClassVar[tuple[str, ...]] = ()  # pipelines SPLCallback may view through this class
    gated: ClassVar[bool] = False  # the Hub repository asks users to accept a license
    max_sequence_length: ClassVar[int] = 256  # T5 tokens
    # subfolder -> loader(model, subfolder=..., **kw); tokenizers and scheduler get no dtype
    tokenizer_parts: ClassVar[tuple[str, ...]] = ()
    model_parts: ClassVar[tuple[str, ...]] = ()  # torch modules, in execution order
    optional_parts: ClassVar[tuple[str, ...]] = ()
    patch_size: ClassVar[int] = 2
    t5_parts: ClassVar[tuple[str, str]] = ("", "")  # (tokenizer, text encoder) subfolders of T5

    def __init__(self, *, device: torch.device, dtype: torch.dtype, cpu_offload: bool = False,
                 place: bool = True, **parts: Any) -> None:
        for name in (*self.tokenizer_parts, *self.model_parts, "scheduler"):
            setattr(self, name, parts.get(name))
        self.denoiser = self.transformer
        self.device, self.dtype = device, dtype
        self.vae_scale_factor = self.vae_downscale(self.vae)
        # pixels per transformer token: working sizes must be multiples of it
        self.size_multiple = self.vae_scale_factor * self.patch_size
        self.offload_hooks: list[Any] = []
        if not place:  # another owner (a diffusers pipeline) placed the modules and keeps them
            return
        for module in self.modules():
            module.requires_grad_(False).eval()
        self._place(cpu_offload)

    @classmethod
    def from_pipeline(cls, pipe: Any) -> FlowBackbone:
        """A view of a diffusers pipeline's own components (nothing copied, moved or cast)."""
        parts = {name: getattr(pipe, name, None) for name in (*cls.tokenizer_parts, *cls.model_parts, "scheduler")}
        device = getattr(pipe, "_execution_device", None) or pipe.device
        return cls(**parts, device=torch.device(device), dtype=pipe.transformer.dtype, place=False)

    @staticmethod
    def vae_downscale(vae: Any) -> int:
        """Pixels per latent cell of the VAE (8 for SD3's and FLUX's: four blocks, three downsamplings)."""
        return 2 ** (len(vae.config.block_out_channels) - 1)

    def modules(self) -> list[torch.nn.Module]:
        """The torch modules in execution order (text encoders, transformer, VAE); absent ones skipped."""
        return [m for m in (getattr(self, n) for n in self.model_parts) if m is not None]

    # ------------------------------------------------------------------ loading
    @classmethod
    def part_loaders(cls) -> dict[str, Callable[..., Any]]:
        """``from_pretrained`` of each part, keyed by subfolder."""
        raise NotImplementedError

    @classmethod
    def load(cls, model: str | None = None, *, device: str = "auto", dtype: str = "auto",
             cpu_offload: bool = False, options: Any = None, **_: Any) -> FlowBackbone:
        """Load from a Hub id (cache first, network only if reachable) or a local diffusers folder."""
        quantize = getattr(options, "quantize", None)
        return cls.from_pretrained(model or cls.default_model, device=device, dtype=dtype,
                                   cpu_offload=cpu_offload, **({"quantize": quantize} if quantize else {}))

    @classmethod
    def from_pretrained(cls, model: str | Path | None, *, device: str | torch.device = "auto",
                        dtype: str | torch.dtype = "auto", cpu_offload: bool = False,
                        quantize: str | None = None) -> FlowBackbone:
        """Each part with ``from_pretrained(model, subfolder=...)``; errors as ModelNotFoundError.

        ``quantize`` ("nf4", "int8") loads the transformer through bitsandbytes (CUDA only).
        """
        dev = resolve_device(device)
        dt = flow_dtype(dtype, dev)
        quant = quantization_config(quantize, dev, dt, cls.name)  # type: ignore[arg-type]
        required = tuple(p for p in cls.part_loaders() if p not in cls.optional_parts)
        source = loading.resolve_model(str(model), subfolders=required,
                                       example=cls.default_model or str(model))
        hint = loading.how_to_get(str(model))
        parts: dict[str, Any] = {}
        with loading.quiet_transformers():
            for name, loader in cls.part_loaders().items():
                if name in cls.optional_parts and isinstance(source, Path) and not (source / name).is_dir():
                    continue  # e.g. SD3 without its T5 encoder
                if name in cls.model_parts:  # weights: safetensors only unless pickle is allowed
                    extra = {"quantization_config": quant} if quant is not None and name == "transformer" else {}
                    parts[name] = loading.load_weights(loader, source, name, hint, cls.gated, dtype=dt, **extra)
                else:
                    parts[name] = loading.load_part(loader, source, name, hint, gated=cls.gated)
        return cls(**parts, device=dev, dtype=dt, cpu_offload=cpu_offload)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write every part in diffusers layout with a ``model_index.json`` the diffusers pipeline reads."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        parts = {name: getattr(self, name) for name in (*self.tokenizer_parts, *self.model_parts, "scheduler")}
        with loading.quiet_transformers():
            for name, part in parts.items():
                if part is not None:
                    part.save_pretrained(folder / name)
        write_model_index(folder, self.pipeline_class, parts)
        return folder

    # ------------------------------------------------------------------ schedule
    def image_tokens(self, latent_shape: tuple[int, ...]) -> int:
        """Number of image tokens the transformer sees for a (B, C, h, w) latent."""
        h, w = latent_shape[-2:]
        return (h // self.patch_size) * (w // self.patch_size)

    def set_schedule(self, steps: int, latent_shape: tuple[int, ...]) -> None:
        """``scheduler.set_timesteps`` as the family's diffusers pipeline calls it."""
        cfg = self.scheduler.config
        kw: dict[str, Any] = {}
        if cfg.get("use_dynamic_shifting", False):
            kw["mu"] = calculate_shift(self.image_tokens(latent_shape),
                                       cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096),
                                       cfg.get("base_shift", 0.5), cfg.get("max_shift", 1.15))
        self.scheduler.set_timesteps(num_inference_steps=steps, **kw)

    def timesteps(self, steps: int, *, latent_shape: tuple[int, ...], **_: Any) -> list[float]:
        """The scheduler's timesteps (1000 t, shifted) for ``steps`` steps at this latent size."""
        if steps < 1:
            raise ConfigError(f"steps must be at least 1, got {steps}.")
        self.set_schedule(steps, latent_shape)
        return [float(t) for t in self.scheduler.timesteps]

    def sigmas(self, steps: int, *, latent_shape: tuple[int, ...]) -> list[float]:
        """The path times t of the schedule, one per step plus the final 0 (what the Euler step uses)."""
        self.set_schedule(steps, latent_shape)
        return [float(s) for s in self.scheduler.sigmas]

    # ------------------------------------------------------------------ VAE
    @no_grad
    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """(mean latent - shift factor) * scaling factor of images in [-1, 1]; float32."""
        vae_latents.check_encodable(image, self.size_multiple, self.name)
        self._using(self.vae)
        return vae_latents.encode(self.vae, image, self.device, self.dtype)

    @no_grad
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (clamped, float32) from scaled, shifted latents."""
        self._using(self.vae)
        return vae_latents.decode(self.vae, latents, self.device, self.dtype)

    def predict_noise(self, latents: torch.Tensor, timestep: Any, embeddings: Any) -> torch.Tensor:
        """Not available: a flow backbone predicts velocity (use ``predict``)."""
        raise ConfigError(f"backbone '{self.name}' is a flow-matching model: it predicts velocity with "
                          f"predict(), not noise; use the flowedit method with it.")

    def tokenize(self, prompt: str) -> list[int]:
        """CLIP token ids of one prompt (the first text encoder's, as word look-ups use)."""
        return list(self.tokenizer(prompt, verbose=False).input_ids)  # past 77 is T5's (long_prompt_tokens)

    def long_prompt_tokens(self, prompt: str) -> tuple[int, int] | None:
        """(T5 tokens of ``prompt``, end included; the T5 length read), or None without a T5 encoder."""
        tokenizer, encoder = (getattr(self, name, None) for name in self.t5_parts)
        if tokenizer is None or encoder is None:  # e.g. SD3 run without its T5 encoder
            return None
        return len(tokenizer(prompt, verbose=False).input_ids), self.max_sequence_length

    # ------------------------------------------------------------------ text helpers
    def _clip_ids(self, tokenizer: Any, prompts: list[str]) -> torch.Tensor:
        return tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids.to(self.device)

    def _t5(self, tokenizer: Any, encoder: Any, prompts: list[str]) -> torch.Tensor:
        ids = tokenizer(prompts, padding="max_length", max_length=self.max_sequence_length,
                        truncation=True, add_special_tokens=True, return_tensors="pt").input_ids
        self._using(encoder)
        return encoder(ids.to(self.device))[0].to(self.dtype)
