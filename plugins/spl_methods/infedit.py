"""InfEdit's inversion-free three-branch sampler (virtual inversion, docs/method.md section 2)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeAlias

from pydantic import Field

from spl_sdk.components import AttentionController, Backbone, ComponentOptions, Conditioning
from spl_sdk.components.method import (
    BatchLayout,
    EditMethod,
    EditOutput,
    EditRequest,
    Injector,
    StepCallback,
)
from spl_sdk.lazy import torch
from spl_sdk.region import hold_outside, latent_outside

# The one place that knows this method's batch: [s_uncond, t_uncond, m_uncond, s_cond, t_cond, m_cond].
LAYOUT = BatchLayout(("source", "target", "mutual"), guided=True)


@dataclass
class Guidance:
    """Classifier-free guidance scales: source and mutual share one, the target has its own."""

    source: float = 1.0
    target: float = 2.0


def injection_steps(steps: int, opt_start: float) -> list[int]:
    """0-based steps at which losses are injected: those with ``i / n >= opt_start``."""
    return [i for i in range(steps) if i / steps >= opt_start and opt_start < 1.0]


# A step coefficient: a Python float (square roots in float64, the default) or a 0-dim float32
# tensor of the scheduler's alphas (square roots in float32, as the paper's code takes them).
Coefficient: TypeAlias = "float | torch.Tensor"


def _sqrt(x: Coefficient) -> Coefficient:
    """Square root in the coefficient's own precision; a negative float32 rounding residue gives 0."""
    return x.clamp(min=0) ** 0.5 if isinstance(x, torch.Tensor) else math.sqrt(max(x, 0.0))


def virtual_inversion_step(x_s: torch.Tensor, x_b: torch.Tensor, z0: torch.Tensor,
                           e_s: torch.Tensor, e_b: torch.Tensor, a: Coefficient, a_prev: Coefficient,
                           noise: torch.Tensor, eta: float = 1.0,
                           inject: Injector | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One update of an edited branch ``x_b`` against the source branch ``x_s``.

    Returns (next x_b, x0_hat of the branch). docs/method.md section 2:
        e_c    = (x_s - sqrt(A) z0) / sqrt(1 - A)
        x0_hat = z0 + ((x_b - x_s) - sqrt(1 - A) (e_b - e_s)) / sqrt(A)
        x_b'   = sqrt(A') x0_hat + sqrt(1 - A' - std) eps + sqrt(std) n,   std = eta (1 - A')
    """
    e_c = (x_s - _sqrt(a) * z0) / _sqrt(1 - a)
    x0_hat = z0 + ((x_b - x_s) - _sqrt(1 - a) * (e_b - e_s)) / _sqrt(a)
    if inject is not None:
        x0_hat = inject(x0_hat)
    eps = (e_b - e_s) + e_c
    std = eta * (1 - a_prev)
    direction = _sqrt(1 - a_prev - std) * eps
    return _sqrt(a_prev) * x0_hat + direction + _sqrt(std) * noise, x0_hat


def source_step(x_s: torch.Tensor, z0: torch.Tensor, a: Coefficient, a_prev: Coefficient,
                noise: torch.Tensor, eta: float = 1.0) -> torch.Tensor:
    """The source branch's update: its clean estimate is ``z0`` itself."""
    e_c = (x_s - _sqrt(a) * z0) / _sqrt(1 - a)
    std = eta * (1 - a_prev)
    return _sqrt(a_prev) * z0 + _sqrt(1 - a_prev - std) * e_c + _sqrt(std) * noise


def guided(noise_pred: torch.Tensor, guidance: Guidance) -> tuple[torch.Tensor, ...]:
    """Split a :data:`LAYOUT` batch of noise predictions into guided (e_s, e_t, e_m)."""
    pred = noise_pred.float()
    scales = {"source": guidance.source, "target": guidance.target, "mutual": guidance.source}
    out = []
    for branch in LAYOUT.branches:
        u, c = LAYOUT.rows(branch, "uncond"), LAYOUT.rows(branch, "cond")
        out.append(pred[u:u + 1] + scales[branch] * (pred[c:c + 1] - pred[u:u + 1]))
    return tuple(out)


def noise_source(z0: torch.Tensor, seed: int, generator: torch.Generator | None,
                 dtype: torch.dtype) -> Callable[[], torch.Tensor]:
    """A function returning the next float32 normal draw of ``z0``'s shape, on ``z0``'s device."""
    if generator is None:
        private = torch.Generator("cpu").manual_seed(seed)
        return lambda: torch.randn(z0.shape, generator=private).to(z0.device)
    return lambda: torch.randn(z0.shape, generator=generator, device=generator.device,
                               dtype=dtype).to(z0.device, torch.float32)


def prompts_for(source_prompt: str, target_prompt: str) -> list[str]:
    """The prompt of each :data:`LAYOUT` row: empty for unconditional rows, mutual reads the source."""
    text = {"source": source_prompt, "target": target_prompt, "mutual": source_prompt}
    return [""] * len(LAYOUT.branches) + [text[b] for b in LAYOUT.branches]


def sample(backbone: Backbone, controller: AttentionController | None, z0: torch.Tensor,
           cond: Conditioning | torch.Tensor, *, steps: int, guidance: Guidance, seed: int,
           opt_start: float = 1.0, inject: Injector | None = None,
           on_step: StepCallback | None = None, eta: float = 1.0,
           generator: torch.Generator | None = None, coefficients: str = "float64",
           outside: torch.Tensor | None = None, **schedule: Any) -> EditOutput:
    """Run the three branches together, one batched denoiser call per step.

    ``cond`` holds one row per :data:`LAYOUT` row (see :func:`prompts_for`); ``inject``
    optimizes the target's clean estimate at the steps of :func:`injection_steps`;
    ``schedule`` keywords (``original_steps``) go to ``backbone.timesteps``. The caller
    installs ``controller`` (with :data:`LAYOUT`); this loop only steps it.

    Random draws: the initial noise, then one draw per step after the denoiser call (and
    before ``inject``, whose re-encode may draw too). They come from a private CPU generator
    seeded with ``seed`` (the same noise on every device), or, when ``generator`` is given
    (the paper profile), from it on its device in the model's dtype, as the paper's code draws.
    ``coefficients="float32"`` takes the step coefficients' square roots from the scheduler's
    float32 alphas in float32 (the paper's code), "float64" from their float64 values.
    ``outside`` (an edit confined to a region, :func:`spl_sdk.region.latent_outside`) holds the
    target branch there at the source branch, the photo's latent at the same noise level, and
    its clean estimate at ``z0``.
    """
    if not isinstance(cond, Conditioning):
        cond = Conditioning(cond)
    timesteps = backbone.timesteps(steps, latent_shape=tuple(z0.shape), **schedule)
    alphas = backbone.scheduler.alphas_cumprod
    z0 = z0.float()
    normal = noise_source(z0, seed, generator, getattr(backbone, "dtype", torch.float32))
    start = normal()
    x_s, x_t, x_m = start.clone(), start.clone(), start.clone()
    inject_at = set(injection_steps(len(timesteps), opt_start)) if inject is not None else set()
    out = EditOutput(latent=z0)
    for i, t in enumerate(timesteps):
        a: Coefficient = alphas[t]
        a_prev: Coefficient = alphas[timesteps[i + 1]] if i + 1 < len(timesteps) else a
        if coefficients != "float32":
            a, a_prev = float(a), float(a_prev)
        if controller is not None:
            controller.begin_step(i)
        began = time.perf_counter()
        latents = torch.cat([x_s, x_t, x_m] * 2)  # rows in LAYOUT order
        noise_pred = backbone.predict(latents, t, cond)
        out.unet_seconds += time.perf_counter() - began
        e_s, e_t, e_m = guided(noise_pred, guidance)
        # one noise draw per step, shared by the branches (docs/method.md section 2)
        noise = normal()
        hook = None
        if i in inject_at:
            out.steps_injected.append(i)
            hook = inject
        x_t_next, x0_t = virtual_inversion_step(x_s, x_t, z0, e_s, e_t, a, a_prev, noise, eta, hook)
        x_m_next, _ = virtual_inversion_step(x_s, x_m, z0, e_s, e_m, a, a_prev, noise, eta)
        x_s_next = source_step(x_s, z0, a, a_prev, noise, eta)
        if controller is not None:
            x_t_next = controller.blend(x_t_next, x_s_next)
        # a confined edit: outside the region the photo's own latent, noised (x_s) and clean (z0)
        x_t_next, x0_t = hold_outside(x_t_next, x_s_next, outside), hold_outside(x0_t, z0, outside)
        x_s, x_t, x_m = x_s_next, x_t_next, x_m_next
        out.latent = x0_t
        if on_step is not None:
            on_step(i, len(timesteps), x0_t)
    return out


class InfEdit(EditMethod):
    """InfEdit: inversion-free three-branch editing with an epsilon model (LCM by default)."""

    name = "infedit"
    requires: ClassVar[frozenset[str]] = frozenset({"epsilon", "alphas-cumprod"})
    default_steps: ClassVar[int] = 15
    default_guidance: ClassVar[Guidance] = Guidance(1.0, 2.0)

    class Options(ComponentOptions):
        """Arithmetic of the update (docs/paper-profile.md); the result is the same up to float32 rounding."""

        coefficients: Literal["float64", "float32"] = Field(
            "float64", description="Precision of the step coefficients' square roots: float64, or the "
                                   "scheduler's float32 alphas in float32 as the paper's code takes them.")

    profile_options: ClassVar[dict[str, dict[str, Any]]] = {"paper": {"coefficients": "float32"}}

    def edit(self, request: EditRequest) -> EditOutput:
        """Encode the six prompts, install the controller with :data:`LAYOUT` and sample."""
        self.check(request.backbone)
        began = time.perf_counter()
        cond = request.backbone.encode_prompts(prompts_for(request.source_prompt, request.target_prompt))
        text_seconds = time.perf_counter() - began
        default = self.default_guidance
        guidance = Guidance(default.source if request.source_guidance is None else request.source_guidance,
                            default.target if request.target_guidance is None else request.target_guidance)
        schedule = {} if request.original_steps is None else {"original_steps": request.original_steps}
        with self.controlling(request.controller, LAYOUT) as controller:
            out = sample(request.backbone, controller, request.z0, cond,
                         steps=request.steps or self.default_steps, guidance=guidance, seed=request.seed,
                         opt_start=request.opt_start, inject=request.inject, on_step=request.on_step,
                         generator=request.generator, coefficients=self.options.coefficients,
                         outside=latent_outside(request.region, request.z0), **schedule)
        out.text_seconds = text_seconds
        return out
