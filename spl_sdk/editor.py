"""The editor: assembles backbone, attention controller, losses, masks and post-processing.

Reads top to bottom like a diffusers pipeline: check inputs (method, controller, mask
extractor against the backbone), encode the source, (build a mask), run the edit method
with loss injection, decode, post-process. The editor knows only the method contract
(:mod:`spl_sdk.components.method`), never a method's batch layout.
"""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import ValidationError

from spl_sdk import __version__, checks
from spl_sdk.components import (
    AttentionController,
    Backbone,
    EditMethod,
    EditOutput,
    EditRequest,
    LossTerm,
    MaskContext,
    MaskExtractor,
    PostProcessor,
)
from spl_sdk.components.method import Injector
from spl_sdk.components.postprocess import PostCallback
from spl_sdk.config import EditConfig, describe_validation_error
from spl_sdk.errors import (
    Cancelled,
    ConfigError,
    IncompatibleError,
    PromptError,
    SplError,
    SplWarning,
)
from spl_sdk.geometry import resize, working_shape
from spl_sdk.imageio import (
    load_image,
    load_mask,
    mask_image,
    mask_to_tensor,
    pil_to_tensor,
    tensor_to_pil,
)
from spl_sdk.injection import make_injector
from spl_sdk.lazy import torch
from spl_sdk.options import construct, load_backbone, merge_options, with_resolved_options
from spl_sdk.plugins import Plugins, PluginWarning, get_plugins
from spl_sdk.terms import build_terms, check_terms

ProgressCallback = Callable[[int, int, "Image.Image | None"], "bool | None"]
# (phase, done, total) per phase: "mask pass", "steps", "injection", "post-processing"
PhaseCallback = Callable[[str, int, int], None]
# fields fixed when the backbone is loaded; an edit cannot override them
LOAD_FIELDS = ("backbone", "model", "device", "dtype", "cpu_offload")
PHASES = ("text", "vae", "mask", "unet", "optimisation", "post_process", "total")
# settings that only an attention controller reads (a method without one refuses them when changed)
ATTENTION_ONLY = ("cross_replace", "self_replace", "blend_words_source", "blend_words_target", "reweight")


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

    def save(self, path: str | Path, *, force: bool = False, mask_path: str | Path | None = None) -> Path:
        """Write the image with its metadata (atomically; an existing file only with ``force``).

        PNG keeps the metadata in a text chunk, JPEG/WebP/TIFF in EXIF; ``--config`` of
        the CLI and :func:`spl_sdk.imageio.read_metadata` read it back. ``mask_path``
        also writes the mask used, when there was one.
        """
        from spl_sdk.imageio import save_image

        if mask_path is not None and self.mask is not None:
            save_image(self.mask, mask_path, metadata=self.metadata(), force=force)
        return save_image(self.image, path, metadata=self.metadata(), force=force)


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
        cfg = self._with_backbone_defaults(self._config_with(overrides))
        if cfg.profile == "paper":
            self._check_paper_profile(cfg)
        cfg = with_resolved_options(self.plugins, cfg, self.backbone)  # every option value, checked
        cfg = self._with_method_defaults(cfg)
        # an instruction method (one prompt) may run without a source prompt
        needs_source = self._new_method(cfg).uses_source_prompt
        source_prompt = source_prompt or ("" if not needs_source else source_prompt)
        self._check_prompts(source_prompt, target_prompt, needs_source)
        timer = _Timer.fromkeys(PHASES, 0.0)
        try:
            with timer.phase("total"):
                result = self._edit(cfg, image, source_prompt, target_prompt, mask,
                                    (callback, on_phase), previews, timer)
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
        # only the fields the user set stay set, so a method may fill the others (_with_method_defaults)
        data = self.config.model_dump(exclude_unset=True)
        data.update(overrides)
        if overrides.get("options"):  # field by field over the editor's (backbone options included)
            data["options"] = merge_options(self.config.options, overrides["options"])
        try:
            return EditConfig(**data)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, "edit options", EditConfig)) from None

    def _with_backbone_defaults(self, cfg: EditConfig) -> EditConfig:
        """Fill the fields left to the backbone (method, working size); the result records them."""
        update = {}
        if cfg.method is None:
            update["method"] = self.backbone.default_method
        if cfg.working_size is None:
            update["working_size"] = self.backbone.default_working_size
        return cfg.model_copy(update=update) if update else cfg

    def _with_method_defaults(self, cfg: EditConfig) -> EditConfig:
        """Fields the user left unset that the method sets itself (flowedit: steps and guidance per family)."""
        method = self._new_method(cfg)
        method.check(self.backbone)  # a method's defaults mean nothing for a backbone it refuses
        update = {k: v for k, v in method.config_defaults(self.backbone).items()
                  if k not in cfg.model_fields_set}
        return cfg.model_copy(update=update) if update else cfg

    def _check_prompts(self, source_prompt: str | None, target_prompt: str, needs_source: bool = True) -> None:
        limit = int(getattr(self.backbone.tokenizer, "model_max_length", 77))
        for label, prompt in (("source", source_prompt), ("target", target_prompt)):
            if label == "source" and not needs_source and not prompt:
                continue  # an instruction method reads only the target prompt
            if not isinstance(prompt, str) or not prompt.strip():
                raise PromptError(f"the {label} prompt is empty; describe the {label} image in a sentence.")
            n = len(self.backbone.tokenize(prompt))
            if n <= limit:
                continue
            longer = self.backbone.long_prompt_tokens(prompt)  # T5 (SD3, FLUX) reads further than CLIP
            if longer is None:
                raise PromptError(
                    f"the {label} prompt is {n} tokens long but the text encoder reads at most "
                    f"{limit} (start and end included); shorten it by {n - limit} tokens.")
            m, long_limit = longer
            if m > long_limit:
                raise PromptError(
                    f"the {label} prompt is {m} T5 tokens long but the model reads at most {long_limit}; "
                    f"shorten it by {m - long_limit} tokens.")
            warnings.warn(SplWarning(
                f"the {label} prompt is {n} CLIP tokens long: the CLIP text encoder reads only its first "
                f"{limit} (start and end included), T5 reads all of it."), stacklevel=3)

    def _edit(self, cfg: EditConfig, image: Any, source_prompt: str, target_prompt: str,
              mask: Any, callbacks: tuple[ProgressCallback | None, PhaseCallback | None],
              previews: bool, timer: _Timer) -> EditResult:
        # refuse what cannot work before any work: method, controller and mask extractor
        method = self._method(cfg)
        controller = self._controller(cfg, method, source_prompt, target_prompt)
        source = self._source_tensor(image).to(self.backbone.device)
        size = tuple(source.shape[-2:])
        mask_tensor = self._user_mask(mask, cfg, size)
        extractor = context = None
        if cfg.needs_mask and mask_tensor is None:
            extractor, context = self._extractor(cfg, source, source_prompt, target_prompt)
        posts = self._post_processors(cfg)
        first_pass = extractor is not None and extractor.needs_first_pass
        progress = _Progress(*callbacks, cfg.steps, 2 if first_pass else 1,
                             sum(p.progress_total() for p in posts), self.backbone, previews)

        # everything, full-resolution post-processing included, runs on the model's device
        # flow transformers take 2x2 latent patches: their sizes are multiples of 16 pixels
        multiple = getattr(self.backbone, "size_multiple", self.backbone.vae_scale_factor)
        work_size = working_shape(*size, cfg.working_size, multiple)
        self._check_schedule(cfg, work_size)
        work = resize(source, work_size)
        with timer.phase("vae"):
            z0, generator = self._encode_source(cfg, work)
            round_trip = self.backbone.decode_latents(z0)
        if extractor is not None:
            with timer.phase("mask"):
                mask_tensor = self._extract_mask(cfg, method, extractor, context, z0, work, size,
                                                 progress, timer)
        terms = build_terms(self.plugins, cfg, mask_tensor)
        inject = self._injector(cfg, terms, round_trip, timer, generator) if terms else None
        progress.opt_start = cfg.opt_start if inject is not None else 1.0
        out = self._run(cfg, method, controller, source_prompt, target_prompt, z0, inject, progress, timer,
                        generator, work, None if mask_tensor is None else resize(mask_tensor, work_size))
        with timer.phase("vae"):
            edited = resize(self.backbone.decode_latents(out.latent).float(), size)
        if cfg.align != "off":  # a method whose output drifts: register it before post-processing
            from spl_sdk.align import AlignmentError, align

            with timer.phase("post_process"):
                try:
                    edited = align(source.float(), edited, cfg.align).image
                except AlignmentError as exc:  # an edit that changed everything: keep it, say so
                    warnings.warn(SplWarning(f"{exc} The edit is post-processed as it came out."),
                                  stacklevel=2)
        if terms:
            with timer.phase("post_process"):
                for post in posts:  # in the configured order
                    progress.begin_post(post.name if len(posts) > 1 else None, post.progress_total())
                    edited = call_post_processor(post, source, edited, terms, progress.post, self.plugins)
        if out.region is not None:  # a confined edit: outside the region the result is the photo itself
            from spl_sdk.region import composite

            edited = composite(source.float(), edited, out.region)
        mask_pil = tensor_to_pil(mask_tensor.expand(-1, 3, -1, -1) * 2 - 1).convert("L") \
            if mask_tensor is not None else None
        return EditResult(image=tensor_to_pil(edited), config=cfg, source_prompt=source_prompt,
                          target_prompt=target_prompt, mask=mask_pil)

    def _method(self, cfg: EditConfig) -> EditMethod:
        """The configured edit method, checked against the backbone (and its controller)."""
        method = self._new_method(cfg)
        method.check(self.backbone)
        if method.uses_attention:
            self.plugins.attention_controller(cfg.attention).check(self.backbone)
        elif "attention" in cfg.model_fields_set and cfg.attention != EditConfig.model_fields["attention"].default:
            # the default passes: every saved result's configuration carries it
            raise ConfigError(f"method '{cfg.method}' drives no attention controller, so attention "
                              f"'{cfg.attention}' would be ignored; leave --attention out, or choose a "
                              f"method that uses one (infedit).")
        else:
            changed = [name for name in ATTENTION_ONLY
                       if getattr(cfg, name) != EditConfig.model_fields[name].get_default(call_default_factory=True)]
            if changed:
                flags = ", ".join("--" + name.replace("_", "-") for name in changed)
                raise ConfigError(f"method '{cfg.method}' drives no attention controller, so {flags} would "
                                  f"be ignored; leave {'it' if len(changed) == 1 else 'them'} out, or choose "
                                  f"a method that uses one (infedit).")
        return method

    def _check_schedule(self, cfg: EditConfig, work_size: tuple[int, int]) -> None:
        """The backbone's schedule for these steps, built once before any work so its rules refuse early."""
        f = self.backbone.vae_scale_factor  # LCM: steps <= original_steps; flow schedules take any steps
        latent_shape = (1, 1, work_size[0] // f, work_size[1] // f)
        self.backbone.timesteps(cfg.steps, latent_shape=latent_shape, original_steps=cfg.original_steps)

    def _new_method(self, cfg: EditConfig) -> EditMethod:
        """An instance of the configured edit method with its options (the one place it is built)."""
        return construct(self.plugins, "method", cfg.method, cfg.options)

    def _check_paper_profile(self, cfg: EditConfig) -> None:
        """Refuse what ``--profile paper`` cannot reproduce: another method, a backbone that cannot sample."""
        if cfg.method != "infedit":
            raise ConfigError(f"profile 'paper' reproduces the paper's InfEdit code, but the edit method is "
                              f"'{cfg.method}'; use --method infedit or --profile default.")
        if not self.backbone.samples_posterior():
            raise IncompatibleError(
                f"profile 'paper' samples the VAE posterior, but backbone '{self.backbone.name}' cannot "
                f"(its encode_image takes no generator); use --profile default.")

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

    def _post_processors(self, cfg: EditConfig) -> list[PostProcessor]:
        """The post-processors that run, in order (none when post-processing is off or no loss is active)."""
        if not cfg.post_process or (cfg.structure_loss is None and cfg.color_loss is None):
            return []
        return [construct(self.plugins, "postprocess", name, cfg.options, cfg)
                for name in cfg.post_processors]

    def _run(self, cfg: EditConfig, method: EditMethod, controller: AttentionController | None,
             source_prompt: str, target_prompt: str, z0: torch.Tensor, inject: Injector | None,
             progress: _Progress, timer: _Timer, generator: torch.Generator | None = None,
             work: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> EditOutput:
        """One pass of the edit method; its UNet and text-encoder time go to their phases."""
        request = EditRequest(
            backbone=self.backbone, source_prompt=source_prompt, target_prompt=target_prompt, z0=z0,
            controller=controller, steps=cfg.steps, source_guidance=cfg.source_guidance,
            target_guidance=cfg.target_guidance, seed=cfg.seed, opt_start=cfg.opt_start,
            inject=inject, on_step=progress, original_steps=cfg.original_steps, generator=generator,
            source_image=work, mask=mask)
        progress.begin_pass()
        out = self.plugins.call(method, "edit", request, check=checks.has_latent)
        if not progress.reported:
            warnings.warn(PluginWarning(
                f"{self.plugins.describe(method)} never called request.on_step(i, n, x0_hat), so "
                f"progress, previews and cancelling do not work with it; call it after each step "
                f"(docs/plugins.md, spl_register_edit_methods)."), stacklevel=3)
        timer["unet"] = timer.get("unet", 0.0) + out.unet_seconds
        timer["text"] = timer.get("text", 0.0) + out.text_seconds
        return out

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

    def _controller(self, cfg: EditConfig, method: EditMethod, source_prompt: str,
                    target_prompt: str) -> AttentionController | None:
        """A fresh attention controller for one pass, or None when the method drives none."""
        if not method.uses_attention:
            return None
        return construct(self.plugins, "attention", cfg.attention, cfg.options, backbone=self.backbone,
                         source_prompt=source_prompt, target_prompt=target_prompt,
                         num_steps=cfg.steps, config=cfg)

    def _injector(self, cfg: EditConfig, terms: list[LossTerm], round_trip: torch.Tensor,
                  timer: _Timer, generator: torch.Generator | None = None) -> Injector:
        """Loss injection: decode x0_hat, optimise it against the source's VAE round trip, re-encode.

        With a ``generator`` (paper profile) the re-encode samples the posterior with it.
        """
        return make_injector(self.backbone, terms, round_trip, iterations=cfg.iterations,
                             solver=cfg.solver, phase=timer.phase, generator=generator,
                             check=lambda decoded: check_terms(self.plugins, terms, round_trip.float(),
                                                               decoded))

    def _extractor(self, cfg: EditConfig, source: torch.Tensor, source_prompt: str,
                   target_prompt: str) -> tuple[MaskExtractor, MaskContext]:
        """The configured mask extractor and its context, checked before any work."""
        extractor = construct(self.plugins, "mask", cfg.mask_extractor, cfg.options, cfg)
        self.backbone.require(f"mask extractor '{extractor.name}'", extractor.requires,
                              "pass a mask image with --mask FILE (mask= in Python) instead")
        context = MaskContext(source_image=source, source_prompt=source_prompt,
                              target_prompt=target_prompt, tokenizer=self.backbone.tokenizer)
        extractor.check(context)
        return extractor, context

    def _extract_mask(self, cfg: EditConfig, method: EditMethod, extractor: MaskExtractor,
                      context: MaskContext, z0: torch.Tensor, work: torch.Tensor, size: tuple[int, int],
                      progress: _Progress, timer: _Timer) -> torch.Tensor:
        """A first pass of the method without losses (attention maps, first result), then the mask."""
        if extractor.needs_first_pass:
            generator = None
            if cfg.profile == "paper":  # each pass starts its own stream, as the paper's code reseeds
                with timer.phase("vae"):
                    z0, generator = self._encode_source(cfg, work)
            controller = self._controller(cfg, method, context.source_prompt, context.target_prompt)
            progress.pass_name = "mask pass"
            first = self._run(cfg, method, controller, context.source_prompt, context.target_prompt,
                              z0, None, progress, timer, generator, work)
            progress.pass_name = None
            context.first_result = resize(self.backbone.decode_latents(first.latent).float(), size)
            context.attention = (controller.attention_maps(self.backbone.attention_res)
                                 if controller is not None else None)
        mask = self.plugins.call(extractor, "extract", context, check=checks.mask_map).float()
        mask = mask.reshape(1, 1, *mask.shape[-2:])
        return resize(mask, size) if tuple(mask.shape[-2:]) != size else mask


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


class _Progress:
    """Adapts the method's per-step hook and the post-processor's callback to the user's callbacks.

    ``callback`` sees one count over the work units: every denoising step of every pass
    (a pass may report another step count than configured: the total follows it), then
    each unit the post-processor reports. ``on_phase`` sees the same units per phase:
    "mask pass" (a first pass for the mask), "steps" and "injection" (steps with
    ``i / n >= opt_start`` when losses are injected), "post-processing".
    """

    def __init__(self, callback: ProgressCallback | None, on_phase: PhaseCallback | None, steps: int,
                 passes: int, post_units: int, backbone: Backbone, previews: bool) -> None:
        self.callback, self.on_phase, self.backbone, self.previews = callback, on_phase, backbone, previews
        self.planned = steps  # steps per pass as configured
        self.steps = steps * passes  # all passes' steps, corrected as passes report theirs
        self.total = self.steps + post_units
        self.done = 0
        self.opt_start = 1.0  # set by the editor once it knows whether losses are injected
        self.pass_name: str | None = None  # "mask pass" during a first pass
        self._pass_steps: int | None = None
        self._phase_done: dict[str, int] = {}
        self._post_before = 0  # units of the post-processors that already ran
        self._post_planned = post_units
        self._post_units = 0  # units the running post-processor announced
        self._post_phase = "post-processing"

    def begin_pass(self) -> None:
        """Called before each run of the method."""
        self._pass_steps = None
        self._phase_done = {}

    @property
    def reported(self) -> bool:
        """Whether the method has reported a step of the current pass."""
        return self._pass_steps is not None

    def __call__(self, step: int, steps: int, x0_hat: torch.Tensor) -> None:
        if self._pass_steps is None:  # the first step of a pass says how many it has
            self._pass_steps = steps
            self.steps += steps - self.planned
            self.total += steps - self.planned
        self.done += 1
        if self.on_phase is not None:
            self._phase(step, steps)
        if self.callback is None:
            return
        preview = tensor_to_pil(self.backbone.decode_latents(x0_hat).float()) if self.previews else None
        self._report(preview)

    def _phase(self, step: int, steps: int) -> None:
        """Report ``step`` (0-based) of a pass of ``steps`` to ``on_phase`` under its phase."""
        injected = sum(1 for i in range(steps) if i / steps >= self.opt_start and self.opt_start < 1.0)
        if self.pass_name is not None:
            phase, total = self.pass_name, steps
        elif injected and step / steps >= self.opt_start:
            phase, total = "injection", injected
        else:
            phase, total = "steps", steps - injected
        self._phase_done[phase] = self._phase_done.get(phase, 0) + 1
        self.on_phase(phase, self._phase_done[phase], total)  # type: ignore[misc]

    def begin_post(self, name: str | None, units: int) -> None:
        """Called before each post-processor (``name`` shown in the phase when several run)."""
        self._post_before += self._post_units
        self._post_units = units
        self._post_phase = "post-processing" if name is None else f"post-processing {name}"

    def post(self, done: int, total: int) -> None:
        """The running post-processor's progress: ``done`` of its own ``total`` units."""
        done = min(max(done, 0), total)
        later = self._post_planned - self._post_before - self._post_units  # the ones still to run
        self.total = self.steps + self._post_before + max(total, 0) + max(later, 0)
        self.done = self.steps + self._post_before + done
        if self.on_phase is not None:
            self.on_phase(self._post_phase, done, total)
        if self.callback is not None:
            self._report(None)

    def _report(self, preview: Image.Image | None) -> None:
        if self.callback(self.done, self.total, preview) is False:
            raise Cancelled("the edit was cancelled; nothing was written.")
