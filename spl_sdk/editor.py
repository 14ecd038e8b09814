"""The editor: a loaded backbone that plans and runs edits (the Python API every door uses).

:meth:`Editor.edit` builds one :class:`~spl_sdk.plan.EditPlan` (settings filled in,
components built, every check done), then runs it in numbered steps that read top to
bottom like a diffusers pipeline: encode, mask, losses, edit pass, decode, post-process.
The editor knows only the method contract (:mod:`spl_sdk.components.method`).
"""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from spl_sdk import checks
from spl_sdk.components import Backbone, EditOutput, EditRequest, LossTerm, PostProcessor
from spl_sdk.components.method import Injector
from spl_sdk.components.postprocess import PostCallback
from spl_sdk.config import EditConfig
from spl_sdk.edit_progress import EditProgress, PhaseCallback, ProgressCallback
from spl_sdk.errors import SplError, SplWarning
from spl_sdk.geometry import resize
from spl_sdk.imageio import tensor_to_pil
from spl_sdk.injection import make_injector
from spl_sdk.lazy import torch
from spl_sdk.options import load_backbone
from spl_sdk.plan import LOAD_FIELDS, EditPlan, make_plan
from spl_sdk.plugins import Plugins, PluginWarning, get_plugins
from spl_sdk.region import composite, require_region
from spl_sdk.terms import build_terms, check_terms
from spl_sdk.version import __version__

__all__ = ["LOAD_FIELDS", "EditResult", "Editor", "PhaseCallback", "ProgressCallback", "call_post_processor"]
PHASES = ("text", "vae", "mask", "unet", "optimization", "post_process", "total")


@dataclass
class EditResult:
    """An edited image with the mask used (if any), the configuration and per-phase timings."""

    image: Image.Image
    config: EditConfig
    source_prompt: str
    target_prompt: str
    mask: Image.Image | None = None
    timings: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # what a recipe adds (a harmonization)

    def metadata(self) -> dict[str, Any]:
        """What a saved result embeds so the edit can be reproduced."""
        return {"spl_sdk": __version__, "source_prompt": self.source_prompt,
                "target_prompt": self.target_prompt, "config": self.config.model_dump(mode="json"),
                "timings": {k: round(v, 3) for k, v in self.timings.items()}} | self.extra

    def save(self, path: str | Path, *, force: bool = False, mask_path: str | Path | None = None,
             extra: dict[str, Any] | None = None) -> Path:
        """Write the image with its metadata (atomically; an existing file only with ``force``).

        The one save-with-metadata of an edit, whichever door it came through: PNG keeps the
        metadata in a text chunk, JPEG/WebP/TIFF in EXIF; ``--config`` of the CLI and
        :func:`spl_sdk.imageio.read_metadata` read it back. ``extra`` adds what the door
        knows (the command, a batch row's key); ``mask_path`` also writes the mask used,
        when there was one.
        """
        from spl_sdk.imageio import save_image

        metadata = self.metadata() | (extra or {})
        if mask_path is not None and self.mask is not None:
            save_image(self.mask, mask_path, metadata=metadata, force=force)
        return save_image(self.image, path, metadata=metadata, force=force)


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
        return cls(load_backbone(plugins, config), config, plugins)

    # ------------------------------------------------------------------ public API
    def edit(self, image: Image.Image | str | Path, source_prompt: str | None, target_prompt: str, *,
             mask: Image.Image | torch.Tensor | None = None, callback: ProgressCallback | None = None,
             previews: bool = False, on_phase: PhaseCallback | None = None,
             **overrides: Any) -> EditResult:
        """Edit ``image`` from ``source_prompt`` towards ``target_prompt``, keeping its edges.

        ``callback(done, total, preview)`` counts every unit of work (return False to cancel);
        ``on_phase(phase, done, total)`` reports the same work per phase, for progress bars.
        """
        plan = self.plan(image, source_prompt, target_prompt, mask=mask, **overrides)
        return self.run(plan, callback=callback, previews=previews, on_phase=on_phase)

    def plan(self, image: Image.Image | str | Path, source_prompt: str | None, target_prompt: str, *,
             mask: Image.Image | torch.Tensor | None = None, **overrides: Any) -> EditPlan:
        """The edit's plan: settings filled in and recorded, components built, every check done."""
        return make_plan(self.backbone, self.plugins, self.config, image, source_prompt, target_prompt,
                         mask, overrides)

    def run(self, plan: EditPlan, *, callback: ProgressCallback | None = None, previews: bool = False,
            on_phase: PhaseCallback | None = None) -> EditResult:
        """Run a plan; the result carries its configuration and per-phase timings."""
        progress = EditProgress(callback, on_phase, plan.config.steps, 2 if plan.first_pass else 1,
                                sum(p.progress_total() for p in plan.posts), self.backbone, previews)
        timer = _Timer.fromkeys(PHASES, 0.0)
        try:
            with timer.phase("total"):
                result = self._run(plan, progress, timer)
        except torch.OutOfMemoryError:
            raise SplError(
                f"the {self.backbone.device} device ran out of memory at working size "
                f"{plan.config.working_size}; try --cpu-offload, a smaller --working-size, or --device cpu."
            ) from None
        result.timings = dict(timer)
        return result

    # ------------------------------------------------------------------ the steps
    def _run(self, plan: EditPlan, progress: EditProgress, timer: _Timer) -> EditResult:
        cfg = plan.config
        # 1. encode the source at the working size (everything runs on the model's device)
        work = plan.work_image
        with timer.phase("vae"):
            z0, generator = self._encode_source(cfg, work)
            round_trip = self.backbone.decode_latents(z0)
        # 2. the mask of masked losses: the user's, else the extractor's (after a first pass)
        mask = plan.mask
        if plan.extractor is not None:
            with timer.phase("mask"):
                mask = self._extract_mask(plan, z0, work, progress, timer)
        # 3. the loss terms, injected into the edit pass's clean estimates
        terms = build_terms(self.plugins, cfg, mask)
        inject = self._injector(cfg, terms, round_trip, timer, generator) if terms else None
        progress.opt_start = cfg.opt_start if inject is not None else 1.0
        # 4. the edit pass (confined to the mask's region when edit_area is 'masked')
        work_mask = None if mask is None else resize(mask, plan.work_size)
        region = work_mask if cfg.edit_area == "masked" else None
        out = self._pass(plan, plan.controller, z0, inject, progress, timer, generator, work_mask, region)
        # 5. decode at the source's size, registered onto it when the method's output drifts
        with timer.phase("vae"):
            edited = resize(self.backbone.decode_latents(out.latent).float(), plan.size)
        if cfg.align != "off":
            from spl_sdk.align import AlignmentError, align

            with timer.phase("post_process"):
                try:
                    edited = align(plan.source.float(), edited, cfg.align).image
                except AlignmentError as exc:  # an edit that changed everything: keep it, say so
                    warnings.warn(SplWarning(f"{exc} The edit is post-processed as it came out."),
                                  stacklevel=2)
        # 6. post-process at full size, in the configured order
        if terms:
            with timer.phase("post_process"):
                for post in plan.posts:
                    progress.begin_post(post.name if len(plan.posts) > 1 else None, post.progress_total())
                    edited = call_post_processor(post, plan.source, edited, terms, progress.post,
                                                 self.plugins)
        # 7. a confined edit: outside the region the result is the photo itself (whether or not
        # the method held its latent there)
        region = require_region(mask) if cfg.edit_area == "masked" else out.region
        if region is not None:
            edited = composite(plan.source.float(), edited, region)
        mask_pil = tensor_to_pil(mask.expand(-1, 3, -1, -1) * 2 - 1).convert("L") if mask is not None else None
        return EditResult(image=tensor_to_pil(edited), config=cfg, source_prompt=plan.source_prompt,
                          target_prompt=plan.target_prompt, mask=mask_pil)

    def _encode_source(self, cfg: EditConfig,
                       work: torch.Tensor) -> tuple[torch.Tensor, torch.Generator | None]:
        """The source latent and the generator a pass continues (docs/method.md section 10).

        Default profile: the posterior mean, and no generator (the method seeds its own).
        Paper profile: a fresh generator on the model's device seeded with the seed, whose first
        draw samples the posterior, as ``torch.manual_seed(seed)`` before each pass of the paper's code.
        """
        if cfg.profile != "paper":
            return self.backbone.encode_image(work).float(), None
        generator = torch.Generator(self.backbone.device).manual_seed(cfg.seed)
        # the paper's image processor hands the VAE an (N, H, W, C) array viewed as NCHW: a
        # channels-last tensor, which takes other convolution kernels (float32 rounding)
        work = work.contiguous(memory_format=torch.channels_last)
        return self.backbone.encode_image(work, generator=generator).float(), generator

    def _pass(self, plan: EditPlan, controller: Any, z0: torch.Tensor, inject: Injector | None,
              progress: EditProgress, timer: _Timer, generator: torch.Generator | None = None,
              mask: torch.Tensor | None = None, region: torch.Tensor | None = None) -> EditOutput:
        """One pass of the edit method; its UNet and text-encoder time go to their phases."""
        cfg = plan.config
        request = EditRequest(
            backbone=self.backbone, source_prompt=plan.source_prompt, target_prompt=plan.target_prompt,
            z0=z0, controller=controller, steps=cfg.steps, source_guidance=cfg.source_guidance,
            target_guidance=cfg.target_guidance, seed=cfg.seed, opt_start=cfg.opt_start,
            inject=inject, on_step=progress, generator=generator, source_image=plan.work_image,
            mask=mask, region=region)
        progress.begin_pass()
        out = self.plugins.call(plan.method, "edit", request, check=checks.has_latent)
        if not progress.reported:
            warnings.warn(PluginWarning(
                f"{self.plugins.describe(plan.method)} never called request.on_step(i, n, x0_hat), so "
                f"progress, previews and canceling do not work with it; call it after each step "
                f"(docs/plugins.md, spl_register_edit_methods)."), stacklevel=4)
        timer["unet"] = timer.get("unet", 0.0) + out.unet_seconds
        timer["text"] = timer.get("text", 0.0) + out.text_seconds
        return out

    def _injector(self, cfg: EditConfig, terms: list[LossTerm], round_trip: torch.Tensor,
                  timer: _Timer, generator: torch.Generator | None = None) -> Injector:
        """Loss injection: decode x0_hat, optimize it against the source's VAE round trip, re-encode.

        With a ``generator`` (paper profile) the re-encode samples the posterior with it.
        """
        return make_injector(self.backbone, terms, round_trip, iterations=cfg.iterations,
                             solver=cfg.solver, phase=timer.phase, generator=generator,
                             check=lambda decoded: check_terms(self.plugins, terms, round_trip.float(),
                                                               decoded))

    def _extract_mask(self, plan: EditPlan, z0: torch.Tensor, work: torch.Tensor,
                      progress: EditProgress, timer: _Timer) -> torch.Tensor:
        """A first pass of the method without losses (attention maps, first result), then the mask."""
        context, controller = plan.context, plan.mask_controller
        if plan.first_pass:
            generator = None
            if plan.config.profile == "paper":  # each pass starts its own stream, as the paper's code reseeds
                with timer.phase("vae"):
                    z0, generator = self._encode_source(plan.config, work)
            progress.pass_name = "mask pass"
            first = self._pass(plan, controller, z0, None, progress, timer, generator)
            progress.pass_name = None
            context.first_result = resize(self.backbone.decode_latents(first.latent).float(), plan.size)
            context.attention = (controller.attention_maps(self.backbone.attention_res)
                                 if controller is not None else None)
        mask = self.plugins.call(plan.extractor, "extract", context, check=checks.mask_map).float()
        mask = mask.reshape(1, 1, *mask.shape[-2:])
        return resize(mask, plan.size) if tuple(mask.shape[-2:]) != plan.size else mask


def call_post_processor(post: PostProcessor, source: torch.Tensor, edited: torch.Tensor,
                        terms: list[LossTerm], callback: PostCallback,
                        plugins: Plugins | None = None) -> torch.Tensor:
    """``post.process`` with the progress callback (``progress=`` for post-processors written before it).

    With ``plugins``, a failure or an output of another shape is one line naming the plug-in.
    """
    params = inspect.signature(post.process).parameters
    kwargs: dict[str, Any] = {}
    if "callback" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs["callback"] = callback
    elif "progress" in params:
        kwargs["progress"] = lambda i, n, *_: callback(i, n)
    if plugins is None:
        return post.process(source, edited, terms, **kwargs)
    return plugins.call(post, "process", source, edited, terms, check=checks.shaped_like(edited),
                        **kwargs)
