"""Edit method ``instruct``: an instruction-edit model's own sampler, with SPL on its clean estimate.

The model (FLUX.1 Kontext, ...) is conditioned on the photo and the instruction
(the target prompt); sampling is its diffusers pipeline's: Gaussian noise from the
seed, Euler steps of its velocity along its schedule. From ``opt_start`` on, the
clean estimate x0 = z_t - t v of each step is refined by loss injection and the
trajectory continues from it (:func:`spl_sdk.injection.continue_from_refined`; the
same code runs in the diffusers callback :class:`spl_sdk.diffusers_callback.SPLCallback`).
Equations: docs/instruct.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from spl_sdk.components.backbone import Backbone
from spl_sdk.components.base import ComponentOptions
from spl_sdk.components.method import EditMethod, EditOutput, EditRequest, Sampling
from spl_sdk.errors import ConfigError
from spl_sdk.injection import clean_estimate, continue_from_refined, injection_steps
from spl_sdk.lazy import no_grad, torch
from spl_sdk.region import hold_outside, latent_outside

EMBEDDED = "embedded-guidance"


@dataclass(frozen=True)
class InstructSettings:
    """What one instruct run uses, after options, config fields and the model's defaults."""

    steps: int
    guidance: float


def starting_noise(shape: tuple[int, ...], seed: int, device: torch.device) -> torch.Tensor:
    """Gaussian latent drawn on the CPU from ``seed`` (the pipelines' draw with a CPU generator)."""
    generator = torch.Generator("cpu").manual_seed(seed)
    return torch.randn(shape, generator=generator).to(device)


class Instruct(EditMethod):
    """Instruction editing: the model's sampler conditioned on the photo and ``-t``, SPL injected."""

    name: ClassVar[str] = "instruct"
    requires: ClassVar[frozenset[str]] = frozenset({"flow", "image-condition"})
    uses_attention: ClassVar[bool] = False
    uses_source_prompt: ClassVar[bool] = False

    class Options(ComponentOptions):
        """Sampler settings; unset ones take the model's pipeline defaults."""

        steps: int | None = Field(None, ge=1, le=200, description=(
            "Sampling steps (FLUX.1 Kontext 28, as its diffusers pipeline); --steps sets it too."))
        guidance: float | None = Field(None, ge=0, le=30, description=(
            "Guidance scale (Kontext: embedded guidance, 3.5 by default); --target-guidance sets it too."))
        confine: bool = Field(False, description=(
            "Edit only inside the mask (--mask FILE): outside it the latent follows the photo's own "
            "noised latent at every step and the result is the photo's pixels exactly. The same as "
            "--edit-area masked, which every method honors."))

    def settings(self, backbone: Backbone, steps: int | None = None,
                 guidance: float | None = None) -> InstructSettings:
        """Each setting: method option, else the edit's config field, else the model's default."""
        opt = self.options
        s = opt.steps if opt.steps is not None else steps if steps is not None else \
            int(getattr(backbone, "default_steps", 28))
        g = opt.guidance if opt.guidance is not None else guidance if guidance is not None else \
            float(getattr(backbone, "default_guidance", 3.5))
        return InstructSettings(steps=int(s), guidance=float(g))

    def sampling(self, backbone: Backbone) -> Sampling:
        """Steps, (target) guidance and alignment for the edit's fields left None.

        These models drift (a few pixels of shift, a slight zoom or warp), so the decoded edit is
        registered onto the photo before post-processing (``align``, docs/align.md) unless the
        backbone says its output has nothing to register (the tiny twins paint noise). The source
        guidance is unused (one prompt): it stays None.
        """
        s = self.settings(backbone)
        return Sampling(steps=s.steps, source_guidance=None, target_guidance=s.guidance,
                        align=getattr(backbone, "default_align", "auto"))

    @staticmethod
    def _velocity(backbone: Backbone, z: torch.Tensor, timestep: Any, cond: Any, guidance: float,
                  cfg: bool) -> torch.Tensor:
        """The guided velocity: embedded guidance in one call, or true CFG over (instruction, negative)."""
        if not cfg:
            embedded = EMBEDDED in backbone.capabilities
            return backbone.predict(z, timestep, cond, guidance=guidance if embedded else None).float()
        v_cond, v_uncond = backbone.predict(torch.cat([z, z]), timestep, cond).float().chunk(2)
        combine = getattr(backbone, "combine_guidance", None)
        return combine(v_cond, v_uncond, guidance) if combine else v_uncond + guidance * (v_cond - v_uncond)

    @no_grad
    def edit(self, request: EditRequest) -> EditOutput:
        """Sample from noise conditioned on the photo and the instruction; inject from opt_start on."""
        backbone = request.backbone
        s = self.settings(backbone, request.steps, request.target_guidance)
        shape = tuple(request.z0.shape)
        keep = self._outside(request)  # refused before any model work when it cannot run
        began = time.perf_counter()
        # true classifier-free guidance (Qwen-Image-Edit) against the model's negative prompt; FLUX.1
        # Kontext has embedded guidance instead, one row
        cfg = EMBEDDED not in backbone.capabilities and s.guidance > 1
        prompts = [request.target_prompt] + ([getattr(backbone, "negative_prompt", "")] if cfg else [])
        cond = backbone.encode_instruction(prompts, request.source_image, request.z0)
        out = EditOutput(latent=request.z0, text_seconds=time.perf_counter() - began,
                         extras={"settings": s})
        timesteps = backbone.timesteps(s.steps, latent_shape=shape)
        sigmas = backbone.sigmas(s.steps, latent_shape=shape)
        inject_at = set(injection_steps(s.steps, request.opt_start)) if request.inject else set()
        z = starting_noise(shape, request.seed, request.z0.device)
        noise = z.clone()
        for i, timestep in enumerate(timesteps):
            t, t_next = float(sigmas[i]), float(sigmas[i + 1])
            began = time.perf_counter()
            v = self._velocity(backbone, z, timestep, cond, s.guidance, cfg)
            out.unet_seconds += time.perf_counter() - began
            z_next = z.float() + (t_next - t) * v  # Euler, as FlowMatchEulerDiscreteScheduler.step
            if i in inject_at:
                z_next, x0 = continue_from_refined(z_next, v, t_next, request.inject)  # type: ignore[arg-type]
                out.steps_injected.append(i)
            else:
                x0 = clean_estimate(z.float(), v, t)
            # outside the region (a confined edit): the photo's latent at the next noise level
            z_next = hold_outside(z_next, (1 - t_next) * request.z0.float() + t_next * noise, keep)
            z = z_next
            if request.on_step is not None:
                request.on_step(i, s.steps, x0)
        out.latent = z
        if keep is not None:
            out.region = request.region if request.region is not None else request.mask
        return out

    def _outside(self, request: EditRequest) -> torch.Tensor | None:
        """Share of each latent pixel outside the region when the edit is confined; None otherwise.

        ``--edit-area masked`` (``request.region``) confines it; the ``confine`` option is its older
        spelling, confining to the edit's mask.
        """
        if request.region is not None:
            return latent_outside(request.region, request.z0)
        if not self.options.confine:
            return None
        if request.mask is None:
            raise ConfigError("instruct.confine needs a mask of the region to edit; pass --mask FILE "
                              "(white = edit here) or drop the confine option.")
        return latent_outside(request.mask, request.z0)
