"""One plan per edit: every setting filled in, every component built and checked, before model work.

The one rule for defaults: a field whose value belongs to a component or to the profile
(method, working size, steps, guidance, solver) is None until the plan fills it, once,
from its owner: the backbone (method, working size), the profile (solver, working size),
the method (steps, guidance, :meth:`~spl_sdk.components.EditMethod.sampling`). The plan's
configuration is what runs and what the result records, whichever door the edit came
through (CLI, batch, studio, Python API).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import ValidationError

from spl_sdk.components import (
    AttentionController,
    Backbone,
    EditMethod,
    MaskContext,
    MaskExtractor,
    PostProcessor,
)
from spl_sdk.config import EditConfig, describe_validation_error
from spl_sdk.errors import ConfigError, IncompatibleError, PromptError, SplError, SplWarning
from spl_sdk.geometry import resize, working_shape
from spl_sdk.imageio import load_image, load_mask, mask_image, mask_to_tensor, pil_to_tensor
from spl_sdk.lazy import torch
from spl_sdk.options import construct, options_for, with_resolved_options
from spl_sdk.plugins import Plugins
from spl_sdk.rawoptions import merge_options
from spl_sdk.region import NO_REGION

# fields fixed when the backbone is loaded; an edit cannot override them
LOAD_FIELDS = ("backbone", "model", "device", "dtype", "cpu_offload")


@dataclass
class EditPlan:
    """What one edit runs: the filled-in configuration, the inputs and every component, checked."""

    config: EditConfig  # every value filled in: what runs and what the result records
    source_prompt: str
    target_prompt: str
    method: EditMethod
    source: torch.Tensor  # (1, 3, H, W) in [-1, 1] at full size, on the model's device
    work_size: tuple[int, int]  # where the diffusion runs
    work_image: torch.Tensor  # the source at the working size (instruction models read the photo)
    controller: AttentionController | None = None  # of the edit pass
    mask: torch.Tensor | None = None  # the user's mask at the source's size, if given
    extractor: MaskExtractor | None = None  # else the one that makes the mask (masked losses)
    context: MaskContext | None = None
    mask_controller: AttentionController | None = None  # of the extractor's first pass
    posts: list[PostProcessor] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the source at full size."""
        return tuple(self.source.shape[-2:])  # type: ignore[return-value]

    @property
    def first_pass(self) -> bool:
        """True when a pass without losses runs first, for the mask extractor."""
        return self.extractor is not None and self.extractor.needs_first_pass


def merged_config(base: EditConfig, overrides: Mapping[str, Any]) -> EditConfig:
    """The editor's configuration with one edit's overrides, validated once.

    Fields the user left None stay None here; :func:`filled_config` fills them.
    """
    fixed = [k for k in LOAD_FIELDS if k in overrides and overrides[k] != getattr(base, k)]
    if fixed:
        raise ConfigError(f"{', '.join(fixed)} cannot change per edit (the model is already "
                          f"loaded); build a new Editor with Editor.from_config(...) instead.")
    if not overrides:
        return base
    data = base.model_dump()
    data.update(overrides)
    if overrides.get("options"):  # field by field over the editor's (backbone options included)
        data["options"] = merge_options(base.options, overrides["options"])
    try:
        return EditConfig(**data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "edit options", EditConfig)) from None


def fill(cfg: EditConfig, values: Mapping[str, Any]) -> EditConfig:
    """``cfg`` with the fields that are None set from ``values`` (the one way defaults are filled)."""
    update = {k: v for k, v in values.items() if getattr(cfg, k) is None and v is not None}
    return cfg.model_copy(update=update) if update else cfg


def filled_config(cfg: EditConfig, backbone: Backbone, plugins: Plugins) -> tuple[EditConfig, EditMethod]:
    """Every None filled by its owner, the method built and checked, all options resolved."""
    cfg = fill(cfg, cfg.profile_defaults())  # paper: solver and working size
    cfg = fill(cfg, {"method": backbone.default_method, "working_size": backbone.default_working_size})
    method: EditMethod = construct(plugins, "method", cfg.method, cfg.options)
    if cfg.profile == "paper":
        check_paper_profile(cfg, method, backbone, plugins)
    method.check(backbone)  # a method's defaults mean nothing for a backbone it refuses
    cfg = fill(cfg, asdict(method.sampling(backbone)))  # steps, guidance, align
    check_controller(cfg, method, backbone, plugins)
    cfg = with_resolved_options(plugins, cfg, backbone, uses_attention=method.uses_attention)
    return cfg, method


def check_controller(cfg: EditConfig, method: EditMethod, backbone: Backbone, plugins: Plugins) -> None:
    """The controller fits the backbone; a method that drives none refuses a controller's settings."""
    if method.uses_attention:
        plugins.attention_controller(cfg.attention).check(backbone)
        return
    if cfg.attention != EditConfig.model_fields["attention"].default:
        # the default passes: every saved result's configuration carries it
        raise ConfigError(f"method '{cfg.method}' drives no attention controller, so attention "
                          f"'{cfg.attention}' would be ignored; leave --attention out, or choose a "
                          f"method that uses one (see 'spl plugins').")
    given = options_for(plugins, "attention", cfg.attention, cfg.options)
    defaults = type(given)()
    changed = [name for name, value in given if value != getattr(defaults, name)]
    if changed:
        raise ConfigError(f"method '{cfg.method}' drives no attention controller, so the option"
                          f"{'s' * (len(changed) > 1)} {', '.join(changed)} of '{cfg.attention}' would be "
                          f"ignored; leave {'it' if len(changed) == 1 else 'them'} out, or choose a method "
                          f"that uses one (see 'spl plugins').")


def check_paper_profile(cfg: EditConfig, method: EditMethod, backbone: Backbone, plugins: Plugins) -> None:
    """Refuse what ``--profile paper`` cannot reproduce: a method without a paper profile, a backbone that cannot sample.

    A method reproduces the paper's code when it declares ``profile_options`` for 'paper'.
    """
    if "paper" not in getattr(method, "profile_options", {}):
        able = sorted(name for name, infos in plugins.registry.get("method", {}).items()
                      if infos and "paper" in getattr(infos[0].cls, "profile_options", {}))
        use = f"use --method {' or --method '.join(able)} or --profile default" if able else \
            "use --profile default"
        raise ConfigError(f"profile 'paper' reproduces the paper's code, which edit method "
                          f"'{cfg.method}' does not; {use}.")
    if not backbone.samples_posterior():
        raise IncompatibleError(
            f"profile 'paper' samples the VAE posterior, but backbone '{backbone.name}' cannot "
            f"(its encode_image takes no generator); use --profile default.")


def check_prompts(backbone: Backbone, source_prompt: str | None, target_prompt: str,
                  needs_source: bool = True) -> None:
    """Each prompt is non-empty and fits the text encoder (T5 may read past CLIP's 77 tokens)."""
    limit = int(getattr(backbone.tokenizer, "model_max_length", 77))
    for label, prompt in (("source", source_prompt), ("target", target_prompt)):
        if label == "source" and not needs_source and not prompt:
            continue  # an instruction method reads only the target prompt
        if not isinstance(prompt, str) or not prompt.strip():
            raise PromptError(f"the {label} prompt is empty; describe the {label} image in a sentence.")
        n = len(backbone.tokenize(prompt))
        if n <= limit:
            continue
        longer = backbone.long_prompt_tokens(prompt)  # T5 (SD3, FLUX) reads further than CLIP
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
            f"{limit} (start and end included), T5 reads all of it."), stacklevel=4)


def source_tensor(image: Any) -> torch.Tensor:
    """The photo as a (1, 3, H, W) float tensor in [-1, 1] on the CPU."""
    if isinstance(image, (str, Path)):
        image = load_image(image)
    if isinstance(image, Image.Image):
        return pil_to_tensor(image.convert("RGB"))
    if isinstance(image, torch.Tensor) and image.dim() == 4 and image.shape[1] == 3:
        return image.float().cpu()
    raise SplError(f"cannot edit an object of type {type(image).__name__}; pass a PIL image, "
                   f"a file path, or a (1, 3, H, W) tensor in [-1, 1].")


def user_mask(mask: Any, cfg: EditConfig, size: tuple[int, int]) -> torch.Tensor | None:
    """The mask given (argument, else the config's mask file) as (1, 1, H, W) in [0, 1], or None."""
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


def check_region_given(cfg: EditConfig, extractor_options: Any) -> None:
    """Refuse an edit confined to a region when nothing gives the region (no mask, no mask words).

    Only when the region is the mask's one use: a masked loss without a mask keeps the
    extractor's own sentence. ``extractor_options`` are the mask extractor's (no model needed).
    """
    if cfg.edit_area != "masked" or cfg.needs_mask or cfg.mask_file is not None:
        return
    words = [value for name, value in extractor_options if "words" in name]
    if words and not any(words):  # an extractor that reads words, given none
        raise ConfigError(NO_REGION)


def new_controller(plugins: Plugins, cfg: EditConfig, method: EditMethod, backbone: Backbone,
                   source_prompt: str, target_prompt: str) -> AttentionController | None:
    """A fresh attention controller for one pass, or None when the method drives none."""
    if not method.uses_attention:
        return None
    return construct(plugins, "attention", cfg.attention, cfg.options, backbone=backbone,
                     source_prompt=source_prompt, target_prompt=target_prompt,
                     num_steps=cfg.steps, profile=cfg.profile)


def make_plan(backbone: Backbone, plugins: Plugins, base: EditConfig, image: Any, source_prompt: str | None,
              target_prompt: str, mask: Any = None, overrides: Mapping[str, Any] | None = None) -> EditPlan:
    """Resolve the settings, build every component and run every check: all before model work."""
    cfg, method = filled_config(merged_config(base, overrides or {}), backbone, plugins)
    if not method.uses_source_prompt:  # an instruction method (one prompt) may run without a source prompt
        source_prompt = source_prompt or ""
    check_prompts(backbone, source_prompt, target_prompt, method.uses_source_prompt)
    source = source_tensor(image).to(backbone.device)
    size = tuple(source.shape[-2:])
    # flow transformers take 2x2 latent patches: their sizes are multiples of 16 pixels
    multiple = getattr(backbone, "size_multiple", backbone.vae_scale_factor)
    work_size = working_shape(*size, cfg.working_size, multiple)
    f = backbone.vae_scale_factor  # the schedule's own rules (LCM: steps <= original_steps) refuse early
    backbone.timesteps(cfg.steps, latent_shape=(1, 1, work_size[0] // f, work_size[1] // f))
    plan = EditPlan(config=cfg, source_prompt=source_prompt, target_prompt=target_prompt, method=method,
                    source=source, work_size=work_size, work_image=resize(source, work_size),
                    mask=user_mask(mask, cfg, size),
                    controller=new_controller(plugins, cfg, method, backbone, source_prompt, target_prompt))
    if cfg.needs_region and plan.mask is None:
        plan.extractor = construct(plugins, "mask-extractor", cfg.mask_extractor, cfg.options, mask_file=cfg.mask_file)
        check_region_given(cfg, plan.extractor.options)
        backbone.require(f"mask extractor '{plan.extractor.name}'", plan.extractor.requires,
                         "pass a mask image with --mask FILE (mask= in Python) instead")
        plan.context = MaskContext(source_image=source, source_prompt=source_prompt,
                                   target_prompt=target_prompt, tokenizer=backbone.tokenizer)
        plan.extractor.check(plan.context)
        if plan.first_pass:
            plan.mask_controller = new_controller(plugins, cfg, method, backbone, source_prompt,
                                                  target_prompt)
    if cfg.post_process and (cfg.structure_loss is not None or cfg.color_loss is not None):
        plan.posts = [construct(plugins, "post-processor", name, cfg.options, iterations=cfg.iterations,
                                solver=cfg.solver) for name in cfg.post_processors]
    return plan
