"""The FlowEdit update (Kulikov et al. 2024; docs/method.md section 9) as functions of a velocity field.

For a flow model (z_t = (1 - t) x0 + t n) FlowEdit keeps an edited latent z_fe,
starting at the source latent z_src, and for the steps n_max .. n_min (counted
from the end of a T-step schedule) moves it along the difference of velocities:

    z_t^src = (1 - t) z_src + t n,   n ~ N(0, I)
    z_t^tar = z_t^src + (z_fe - z_src)
    z_fe   += (t_next - t) * mean over n_avg draws of [v(z_t^tar, tgt) - v(z_t^src, src)]

Below n_min it samples from the target plainly, starting from z_t^tar. With
equal prompts and guidance the two velocities are equal, so z_fe stays z_src.

Loss injection (docs/method.md section 9) refines a clean estimate of the edit and
puts it back by shifting the state by d = x0' - x0. Two estimates are offered:

- "edit" (default): z_fe - t (v_tar - v_src) = z_src + (x0_tar - x0_src), where the
  Euler step would land if it went straight to t = 0. It is FlowEdit's own estimate of
  its output: the target branch's clean estimate x0_tar = z_t^tar - t v_tar with the
  source branch's reconstruction error (z_src - x0_src) added back, as FlowEdit's
  coupling does. z_fe += d makes it x0' exactly, so an injection at the last step
  is the result itself.
- "target": x0_tar = z_t^tar - t v_tar, the edited branch's clean estimate as
  docs/method.md section 9 words it. z_fe += d moves z_t^tar by d, so (with v held)
  x0_tar becomes x0'; the result still carries (z_src - x0_src), which for a model
  that reconstructs the source poorly at that t is large (measured in docs/flow.md).

Both differ by a term that does not depend on z_fe, so the put-back rule is the
same. In the plain-sampling phase (below n_min) the estimate is z_t - t v and
z_t += d; the Euler step keeps that clean estimate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from spl_sdk.lazy import torch
from spl_sdk.region import hold_outside

# (z_t^src, z_t^tar, timestep) -> (v_src, v_tar), each guided
VelocityPair: TypeAlias = "Callable[[torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]]"
# (z_t, timestep) -> v_tar
TargetVelocity: TypeAlias = "Callable[[torch.Tensor, float], torch.Tensor]"
Injector: TypeAlias = "Callable[[torch.Tensor], torch.Tensor]"
StepCallback: TypeAlias = "Callable[[int, int, torch.Tensor], None]"


@dataclass
class FlowEditResult:
    """The edited clean latent and what the loop did."""

    latent: torch.Tensor
    velocity_seconds: float = 0.0
    steps_injected: list[int] = field(default_factory=list)
    steps_run: int = 0


def edit_steps(steps: int, n_max: int, n_min: int) -> list[int]:
    """Schedule indices that run: from step ``steps - n_max`` to the end (FlowEdit, then plain below n_min)."""
    return list(range(max(steps - n_max, 0), steps))


def injection_steps(steps: int, opt_start: float, first: int = 0) -> list[int]:
    """Steps ``i`` (0-based, of ``steps``) with ``i / steps >= opt_start`` among those from ``first`` on."""
    return [i for i in range(first, steps) if opt_start < 1.0 and i / steps >= opt_start]


def coupled_latents(z_fe: torch.Tensor, z_src: torch.Tensor, noise: torch.Tensor,
                    t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(z_t^src, z_t^tar): the noised source and the edited branch carrying the same noise."""
    z_src_t = (1 - t) * z_src + t * noise
    # z_t^src + (z_fe - z_src), not z_fe + z_t^src - z_src: exact when z_fe == z_src
    return z_src_t, z_src_t + (z_fe - z_src)


def clean_estimate(z_t: torch.Tensor, v: torch.Tensor, t: float) -> torch.Tensor:
    """x0 = z_t - t v for the path z_t = (1 - t) x0 + t n."""
    return z_t - t * v


def flowedit(z_src: torch.Tensor, timesteps: Sequence[float], sigmas: Sequence[float],
             velocity_pair: VelocityPair, target_velocity: TargetVelocity | None = None, *,
             n_max: int, n_min: int = 0, n_avg: int = 1, seed: int = 0, opt_start: float = 1.0,
             inject: Injector | None = None, on_step: StepCallback | None = None,
             estimate: str = "edit", outside: torch.Tensor | None = None) -> FlowEditResult:
    """Run FlowEdit over ``timesteps`` (path times ``sigmas``, one more than steps, ending at 0).

    ``on_step(i, steps, x0)`` is called for every step of the schedule; before step
    ``steps - n_max`` nothing runs and the edited latent is the source itself.
    ``estimate`` ("edit" or "target") picks the clean estimate that is injected and reported.
    ``outside`` (an edit confined to a region, :func:`spl_sdk.region.latent_outside`) holds the
    edit there at the photo: z_fe at z_src (so z_t^tar is z_t^src, the photo's latent at the
    same noise level) and, below n_min, z_t at (1 - t) z_src + t n with its starting noise n.
    """
    if estimate not in ("edit", "target"):
        raise ValueError(f"estimate must be 'edit' or 'target', not {estimate!r}")
    steps = len(timesteps)
    if n_min > 0 and target_velocity is None:
        raise ValueError("n_min > 0 needs target_velocity for the plain-sampling steps")
    generator = torch.Generator("cpu").manual_seed(seed)
    z_src = z_src.float()

    def draw() -> torch.Tensor:
        return torch.randn(z_src.shape, generator=generator).to(z_src.device)

    run = edit_steps(steps, n_max, n_min)
    inject_at = set(injection_steps(steps, opt_start, run[0] if run else steps)) if inject else set()
    out = FlowEditResult(latent=z_src, steps_run=len(run))
    z_fe, z_t, start = z_src.clone(), None, None
    if on_step is not None:
        for i in range(steps - len(run)):  # skipped: the edit has not started, z_fe = z_src
            on_step(i, steps, z_src)
    for i in run:
        t, t_next, timestep = float(sigmas[i]), float(sigmas[i + 1]), timesteps[i]
        began = time.perf_counter()
        if i < steps - n_min:  # FlowEdit: the ODE on the difference of velocities
            v_delta = torch.zeros_like(z_src)
            x0 = torch.zeros_like(z_src)
            for _ in range(n_avg):
                z_src_t, z_tar_t = coupled_latents(z_fe, z_src, draw(), t)
                v_src, v_tar = velocity_pair(z_src_t, z_tar_t, timestep)
                v_delta += (v_tar - v_src) / n_avg
                if estimate == "target":
                    x0 += clean_estimate(z_tar_t, v_tar, t) / n_avg
            if estimate == "edit":
                x0 = z_fe - t * v_delta
        else:  # below n_min: plain sampling from the target, starting from z_t^tar
            if z_t is None:
                start = draw()
                z_t = coupled_latents(z_fe, z_src, start, t)[1]
            v = target_velocity(z_t, timestep)  # type: ignore[misc]
            x0 = clean_estimate(z_t, v, t)
        out.velocity_seconds += time.perf_counter() - began
        if i in inject_at:
            shift = inject(x0) - x0  # type: ignore[misc]
            out.steps_injected.append(i)
            x0 = x0 + shift
            if z_t is None:
                z_fe = z_fe + shift
            else:
                z_t = z_t + shift
        if z_t is None:
            z_fe = hold_outside(z_fe + (t_next - t) * v_delta, z_src, outside)
        else:
            z_t = hold_outside(z_t + (t_next - t) * v, (1 - t_next) * z_src + t_next * start, outside)
        if on_step is not None:
            on_step(i, steps, x0)
    out.latent = z_fe if z_t is None else z_t
    return out
