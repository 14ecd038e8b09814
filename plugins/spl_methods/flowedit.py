"""Edit method ``flowedit``: inversion-free editing of flow-matching models (docs/method.md section 9)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from spl_methods.flowedit_loop import flowedit
from spl_methods.velocity import EMBEDDED, GuidedVelocity
from spl_sdk.components.backbone import Backbone
from spl_sdk.components.base import ComponentOptions
from spl_sdk.components.method import EditMethod, EditOutput, EditRequest, Sampling
from spl_sdk.errors import ConfigError
from spl_sdk.region import latent_outside


@dataclass(frozen=True)
class FlowEditDefaults:
    """One row of the per-family defaults: T, n_max, n_min, n_avg and the two guidance scales."""

    steps: int
    n_max: int
    source_guidance: float
    target_guidance: float
    n_min: int = 0
    n_avg: int = 1


# The published FlowEdit settings (Kulikov et al. 2024) for SD3 and FLUX.1-dev. FLUX.1-schnell
# has none: it is timestep-distilled and takes no guidance, so it runs unguided (scale 1 = no
# CFG batch) on 8 steps of its schedule, the last 6 editing (n_max / T = 0.75, between
# SD3's 0.66 and dev's 0.86); more steps than its 1-4 keep the coupled ODE accurate.
FAMILY_DEFAULTS: dict[str, FlowEditDefaults] = {
    "sd3": FlowEditDefaults(steps=50, n_max=33, source_guidance=3.5, target_guidance=13.5),
    "flux-dev": FlowEditDefaults(steps=28, n_max=24, source_guidance=1.5, target_guidance=5.5),
    "flux-schnell": FlowEditDefaults(steps=8, n_max=6, source_guidance=1.0, target_guidance=1.0),
}


def defaults_for(backbone: Backbone | type[Backbone]) -> FlowEditDefaults:
    """The row for a backbone: FLUX with embedded guidance is dev-like, without it schnell-like."""
    family = getattr(backbone, "family", "")
    if family == "flux":
        return FAMILY_DEFAULTS["flux-dev" if EMBEDDED in backbone.capabilities else "flux-schnell"]
    return FAMILY_DEFAULTS.get(family, FAMILY_DEFAULTS["sd3"])


@dataclass(frozen=True)
class FlowEditSettings:
    """Everything one FlowEdit run uses, after options, config fields and family defaults."""

    steps: int
    n_max: int
    n_min: int
    n_avg: int
    source_guidance: float
    target_guidance: float


class FlowEdit(EditMethod):
    """FlowEdit: edits flow models (SD3, FLUX) along the difference of target and source velocities."""

    name: ClassVar[str] = "flowedit"
    requires: ClassVar[frozenset[str]] = frozenset({"flow"})
    uses_attention: ClassVar[bool] = False  # FlowEdit drives no attention controller

    class Options(ComponentOptions):
        """FlowEdit's edit window; T and the guidance are the edit's --steps and --*-guidance."""

        n_max: int | None = Field(None, ge=1, le=200, description=(
            "Edit over the last n_max steps of T (SD3 33, dev 24, schnell 6; scaled with T when unset)."))
        n_min: int = Field(0, ge=0, le=200, description=(
            "The last n_min steps sample the target plainly instead of editing."))
        n_avg: int = Field(1, ge=1, le=16, description=(
            "Noise draws averaged per step (each costs one more denoiser call)."))

        inject_on: Literal["edit", "target"] = Field("edit", description=(
            "Clean estimate refined by loss injection: 'edit' = z_fe - t (v_tar - v_src), FlowEdit's "
            "own estimate of its result (default); 'target' = z_t^tar - t v_tar."))

        @model_validator(mode="after")
        def _window(self) -> FlowEdit.Options:
            if self.n_max is not None and self.n_min >= self.n_max:
                raise ValueError(f"n_min ({self.n_min}) must be below n_max ({self.n_max})")
            return self

    def settings(self, backbone: Backbone, steps: int | None = None,
                 source_guidance: float | None = None,
                 target_guidance: float | None = None) -> FlowEditSettings:
        """Resolve each parameter: the edit's value, else the family default (n_max scaled with T)."""
        fam, opt = defaults_for(backbone), self.options
        t = fam.steps if steps is None else steps
        n_max = opt.n_max if opt.n_max is not None else max(1, round(t * fam.n_max / fam.steps))
        n_max = min(n_max, t)
        if opt.n_min >= n_max:
            raise ConfigError(f"flowedit's n_min ({opt.n_min}) must be below n_max ({n_max}) for "
                              f"{t} steps; lower flowedit.n_min or raise flowedit.n_max.")
        return FlowEditSettings(steps=t, n_max=n_max, n_min=opt.n_min, n_avg=opt.n_avg,
                                source_guidance=float(fam.source_guidance if source_guidance is None
                                                      else source_guidance),
                                target_guidance=float(fam.target_guidance if target_guidance is None
                                                      else target_guidance))

    def sampling(self, backbone: Backbone) -> Sampling:
        """The published steps and guidance of the backbone's family (docs/method.md section 9)."""
        fam = defaults_for(backbone)
        return Sampling(fam.steps, fam.source_guidance, fam.target_guidance)

    def edit(self, request: EditRequest) -> EditOutput:
        """Run FlowEdit from the source latent; loss injection on the edited branch's clean estimate."""
        backbone = request.backbone
        s = self.settings(backbone, request.steps, request.source_guidance, request.target_guidance)
        shape = tuple(request.z0.shape)
        timesteps = backbone.timesteps(s.steps, latent_shape=shape)
        sigmas = _sigmas(backbone, s.steps, shape, timesteps)
        began = time.perf_counter()
        velocity = GuidedVelocity(backbone, [request.source_prompt, request.target_prompt],
                                  [s.source_guidance, s.target_guidance])
        target = GuidedVelocity(backbone, [request.target_prompt], [s.target_guidance]) if s.n_min else None
        text_seconds = time.perf_counter() - began

        def pair(z_src_t: Any, z_tar_t: Any, timestep: float) -> tuple[Any, Any]:
            v_src, v_tar = velocity([z_src_t, z_tar_t], timestep)
            return v_src, v_tar

        def plain(z_t: Any, timestep: float) -> Any:
            return target([z_t], timestep)[0]  # type: ignore[misc]

        out = flowedit(request.z0, timesteps, sigmas, pair, plain if target else None, n_max=s.n_max,
                       n_min=s.n_min, n_avg=s.n_avg, seed=request.seed, opt_start=request.opt_start,
                       inject=request.inject, on_step=request.on_step,
                       estimate=self.options.inject_on,
                       outside=latent_outside(request.region, request.z0))
        return EditOutput(latent=out.latent, unet_seconds=out.velocity_seconds,
                          text_seconds=text_seconds,
                          steps_injected=out.steps_injected,
                          extras={"settings": s, "denoiser_calls": velocity.calls})


def _sigmas(backbone: Any, steps: int, shape: tuple[int, ...], timesteps: list[float]) -> list[float]:
    """Path times of the schedule plus the final 0: the backbone's own, else timestep / 1000."""
    if hasattr(backbone, "sigmas"):
        return list(backbone.sigmas(steps, latent_shape=shape))
    return [float(t) / 1000 for t in timesteps] + [0.0]
