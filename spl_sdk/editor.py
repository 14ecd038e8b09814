"""The editor: assembles backbone, attention controller, losses, masks and post-processing.

Reads top to bottom like a diffusers pipeline: check inputs, encode prompts,
encode the source, (build a mask), sample with loss injection, decode, post-process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from pydantic import ValidationError

from spl_sdk import __version__
from spl_sdk.components import AttentionController, Backbone, LossTerm, MaskContext
from spl_sdk.config import EditConfig, describe_validation_error
from spl_sdk.errors import Cancelled, ConfigError, PromptError, SplError
from spl_sdk.geometry import resize, working_shape
from spl_sdk.imageio import (
    load_image,
    load_mask,
    mask_image,
    mask_to_tensor,
    pil_to_tensor,
    tensor_to_pil,
)
from spl_sdk.optimiser import optimise_image
from spl_sdk.plugins import Plugins, get_plugins
from spl_sdk.sampler import Guidance, SamplerOutput, sample
from spl_sdk.terms import build_terms

ProgressCallback = Callable[[int, int, "Image.Image | None"], "bool | None"]
# fields fixed when the backbone is loaded; an edit cannot override them
LOAD_FIELDS = ("backbone", "model", "device", "dtype", "cpu_offload")
PHASES = ("text", "vae", "mask", "unet", "optimisation", "post_process", "total")


@dataclass
class EditResult:
    """An edited image with the mask used (if any), the configuration and per-phase timings."""

    image: Image.Image
    config: EditConfig
    source_prompt: str
    target_prompt: str
    mask: Image.Image | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """What a saved result embeds so the edit can be reproduced."""
        return {"spl_sdk": __version__, "source_prompt": self.source_prompt,
                "target_prompt": self.target_prompt, "config": self.config.model_dump(mode="json"),
                "timings": {k: round(v, 3) for k, v in self.timings.items()}}


class _Timer(dict):
    """Accumulates seconds per phase."""

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - began


class Editor:
    """A loaded backbone plus the plug-ins an edit needs; reuse it for many edits."""

    def __init__(self, backbone: Backbone, config: EditConfig, plugins: Plugins) -> None:
        self.backbone = backbone
        self.config = config
        self.plugins = plugins

    @classmethod
    def from_config(cls, config: EditConfig | None = None, plugins: Plugins | None = None) -> Editor:
        """Load the configured backbone once (the slow part) and keep it for later edits."""
        config = config or EditConfig()
        plugins = plugins or get_plugins()
        backbone_cls = plugins.backbone(config.backbone)
        backbone = backbone_cls.load(config.model, device=config.device, dtype=config.dtype,
                                     cpu_offload=config.cpu_offload)
        return cls(backbone, config, plugins)

    # ------------------------------------------------------------------ public API
    def edit(self, image: Image.Image | str | Path, source_prompt: str, target_prompt: str, *,
             mask: Image.Image | torch.Tensor | None = None, callback: ProgressCallback | None = None,
             previews: bool = False, **overrides: Any) -> EditResult:
        """Edit ``image`` from ``source_prompt`` towards ``target_prompt``, keeping its edges."""
        cfg = self._config_with(overrides)
        self._check_prompts(source_prompt, target_prompt)
        timer = _Timer.fromkeys(PHASES, 0.0)
        try:
            with timer.phase("total"):
                result = self._edit(cfg, image, source_prompt, target_prompt, mask, callback,
                                    previews, timer)
        except torch.OutOfMemoryError:
            raise SplError(
                f"the {self.backbone.device} device ran out of memory at working size "
                f"{cfg.working_size}; try --cpu-offload, a smaller --working-size, or --device cpu."
            ) from None
        result.timings = dict(timer)
        return result

    # ------------------------------------------------------------------ steps
    def _config_with(self, overrides: dict[str, Any]) -> EditConfig:
        fixed = [k for k in LOAD_FIELDS if k in overrides and overrides[k] != getattr(self.config, k)]
        if fixed:
            raise ConfigError(f"{', '.join(fixed)} cannot change per edit (the model is already "
                              f"loaded); build a new Editor with Editor.from_config(...) instead.")
        data = self.config.model_dump()
        data.update(overrides)
        try:
            return EditConfig(**data)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, "edit options", EditConfig)) from None

    def _check_prompts(self, source_prompt: str, target_prompt: str) -> None:
        limit = int(getattr(self.backbone.tokenizer, "model_max_length", 77))
        for label, prompt in (("source", source_prompt), ("target", target_prompt)):
            if not isinstance(prompt, str) or not prompt.strip():
                raise PromptError(f"the {label} prompt is empty; describe the {label} image in a sentence.")
            n = len(self.backbone.tokenize(prompt))
            if n > limit:
                raise PromptError(
                    f"the {label} prompt is {n} tokens long but the text encoder reads at most "
                    f"{limit} (start and end included); shorten it by {n - limit} tokens.")

    def _edit(self, cfg: EditConfig, image: Any, source_prompt: str, target_prompt: str,
              mask: Any, callback: ProgressCallback | None, previews: bool, timer: _Timer) -> EditResult:
        # everything, full-resolution post-processing included, runs on the model's device
        source = self._source_tensor(image).to(self.backbone.device)
        size = tuple(source.shape[-2:])
        work_size = working_shape(*size, cfg.working_size, self.backbone.vae_scale_factor)
        source_work = resize(source, work_size)
        with timer.phase("text"):
            embeddings = self.backbone.encode_prompts(["", "", "", source_prompt, target_prompt,
                                                        source_prompt])
        with timer.phase("vae"):
            z0 = self.backbone.encode_image(source_work).float()
            round_trip = self.backbone.decode_latents(z0)
        passes = 2 if (cfg.needs_mask and mask is None and cfg.mask_file is None) else 1
        progress = _Progress(callback, cfg.steps * passes, self.backbone, previews)

        mask_tensor = self._user_mask(mask, cfg, size)
        if cfg.needs_mask and mask_tensor is None:
            with timer.phase("mask"):
                mask_tensor = self._extract_mask(cfg, source, source_prompt, target_prompt,
                                                 z0, embeddings, size, progress)
        terms = build_terms(self.plugins, cfg, mask_tensor)

        controller = self._controller(cfg, source_prompt, target_prompt)
        inject = self._injector(cfg, terms, round_trip, timer) if terms else None
        out = self._sample(cfg, controller, z0, embeddings, inject, progress)
        timer["unet"] = timer.get("unet", 0.0) + out.unet_seconds
        with timer.phase("vae"):
            edited = resize(self.backbone.decode_latents(out.latent).float(), size)
        if cfg.post_process and terms:
            post = self.plugins.post_processor(cfg.post_processor)(cfg)
            with timer.phase("post_process"):
                edited = post.process(source, edited, terms)
        mask_pil = tensor_to_pil(mask_tensor.expand(-1, 3, -1, -1) * 2 - 1).convert("L") \
            if mask_tensor is not None else None
        return EditResult(image=tensor_to_pil(edited), config=cfg, source_prompt=source_prompt,
                          target_prompt=target_prompt, mask=mask_pil)

    def _source_tensor(self, image: Any) -> torch.Tensor:
        if isinstance(image, (str, Path)):
            image = load_image(image)
        if isinstance(image, Image.Image):
            return pil_to_tensor(image.convert("RGB"))
        if isinstance(image, torch.Tensor) and image.dim() == 4 and image.shape[1] == 3:
            return image.float().cpu()
        raise SplError(f"cannot edit an object of type {type(image).__name__}; pass a PIL image, "
                       f"a file path, or a (1, 3, H, W) tensor in [-1, 1].")

    def _user_mask(self, mask: Any, cfg: EditConfig, size: tuple[int, int]) -> torch.Tensor | None:
        if mask is None and cfg.mask_file is not None:
            mask = load_mask(cfg.mask_file, (size[1], size[0]))
        if mask is None:
            return None
        if isinstance(mask, Image.Image):
            mask = mask_to_tensor(mask_image(mask))
        mask = mask.float()
        while mask.dim() < 4:
            mask = mask.unsqueeze(0)
        if tuple(mask.shape[-2:]) != size:
            mask = resize(mask, size)
        return mask.clamp(0, 1)

    def _controller(self, cfg: EditConfig, source_prompt: str, target_prompt: str) -> AttentionController:
        return self.plugins.attention_controller(cfg.attention)(
            backbone=self.backbone, source_prompt=source_prompt, target_prompt=target_prompt,
            num_steps=cfg.steps, config=cfg)

    def _sample(self, cfg: EditConfig, controller: AttentionController, z0: torch.Tensor,
                embeddings: torch.Tensor, inject: Any, progress: _Progress) -> SamplerOutput:
        with controller.installed() if controller is not None else nullcontext():
            return sample(self.backbone, controller, z0, embeddings, steps=cfg.steps,
                          original_steps=cfg.original_steps,
                          guidance=Guidance(cfg.source_guidance, cfg.target_guidance),
                          seed=cfg.seed, opt_start=cfg.opt_start, inject=inject, on_step=progress)

    def _injector(self, cfg: EditConfig, terms: list[LossTerm], round_trip: torch.Tensor,
                  timer: _Timer) -> Callable[[torch.Tensor], torch.Tensor]:
        """Loss injection: decode x0_hat, optimise it against the source's VAE round trip, re-encode."""

        def inject(x0_hat: torch.Tensor) -> torch.Tensor:
            with timer.phase("vae"):
                decoded = self.backbone.decode_latents(x0_hat).float()
            with timer.phase("optimisation"):
                refined = optimise_image(round_trip.float(), decoded, terms, iterations=cfg.iterations,
                                         solver=cfg.solver).image
            with timer.phase("vae"):
                return self.backbone.encode_image(refined).float()

        return inject

    def _extract_mask(self, cfg: EditConfig, source: torch.Tensor, source_prompt: str,
                      target_prompt: str, z0: torch.Tensor, embeddings: torch.Tensor,
                      size: tuple[int, int], progress: _Progress) -> torch.Tensor:
        """First pass without losses for attention maps and a first result, then the mask."""
        extractor = self.plugins.mask_extractor(cfg.mask_extractor)(cfg)
        context = MaskContext(source_image=source, source_prompt=source_prompt,
                              target_prompt=target_prompt, tokenizer=self.backbone.tokenizer)
        extractor.check(context)
        if extractor.needs_first_pass:
            controller = self._controller(cfg, source_prompt, target_prompt)
            first = self._sample(cfg, controller, z0, embeddings, None, progress)
            context.first_result = resize(self.backbone.decode_latents(first.latent).float(), size)
            context.attention = controller.attention_maps(16)
        mask = extractor.extract(context).float()
        return resize(mask, size) if tuple(mask.shape[-2:]) != size else mask


class _Progress:
    """Adapts the sampler's per-step hook to the user's callback (with optional previews)."""

    def __init__(self, callback: ProgressCallback | None, total: int, backbone: Backbone,
                 previews: bool) -> None:
        self.callback, self.total, self.backbone, self.previews = callback, total, backbone, previews
        self.done = 0

    def __call__(self, step: int, steps: int, x0_hat: torch.Tensor) -> None:
        self.done += 1
        if self.callback is None:
            return
        preview = tensor_to_pil(self.backbone.decode_latents(x0_hat).float()) if self.previews else None
        if self.callback(self.done, self.total, preview) is False:
            raise Cancelled("the edit was cancelled; nothing was written.")
