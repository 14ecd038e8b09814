"""Inversion-free three-branch sampler (virtual inversion as in InfEdit; DESIGN.md section 2)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from spl_sdk.components import AttentionController, Backbone

# The UNet batch is [s_uncond, t_uncond, m_uncond, s_cond, t_cond, m_cond].
BRANCHES = 3

Injector = Callable[[torch.Tensor], torch.Tensor]
StepCallback = Callable[[int, int, torch.Tensor], None]


@dataclass
class SamplerOutput:
    """The last step's target estimate of the clean latent, plus time spent in the UNet."""

    latent: torch.Tensor
    mutual_latent: torch.Tensor
    unet_seconds: float = 0.0
    inject_seconds: float = 0.0
    steps_injected: list[int] = field(default_factory=list)


@dataclass
class Guidance:
    """Classifier-free guidance scales: source and mutual share one, the target has its own."""

    source: float = 1.0
    target: float = 2.0


def schedule(backbone: Backbone, steps: int, original_steps: int) -> list[int]:
    """The LCM timesteps of the edit (``set_timesteps`` with ``original_inference_steps``)."""
    scheduler = backbone.scheduler
    try:
        scheduler.set_timesteps(num_inference_steps=steps, original_inference_steps=original_steps)
    except TypeError:  # a non-LCM scheduler plugged in by a third-party backbone
        scheduler.set_timesteps(steps)
    return [int(t) for t in scheduler.timesteps]


def injection_steps(steps: int, opt_start: float) -> list[int]:
    """0-based steps at which losses are injected: those with ``i / n >= opt_start``."""
    return [i for i in range(steps) if i / steps >= opt_start and opt_start < 1.0]


def virtual_inversion_step(x_s: torch.Tensor, x_b: torch.Tensor, z0: torch.Tensor,
                           e_s: torch.Tensor, e_b: torch.Tensor, a: float, a_prev: float,
                           noise: torch.Tensor, eta: float = 1.0,
                           inject: Injector | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One update of an edited branch ``x_b`` against the source branch ``x_s``.

    Returns (next x_b, x0_hat of the branch). DESIGN.md section 2:
        e_c    = (x_s - sqrt(A) z0) / sqrt(1 - A)
        x0_hat = z0 + ((x_b - x_s) - sqrt(1 - A) (e_b - e_s)) / sqrt(A)
        x_b'   = sqrt(A') x0_hat + sqrt(1 - A' - std) eps + sqrt(std) n,   std = eta (1 - A')
    """
    e_c = (x_s - math.sqrt(a) * z0) / math.sqrt(1 - a)
    x0_hat = z0 + ((x_b - x_s) - math.sqrt(1 - a) * (e_b - e_s)) / math.sqrt(a)
    if inject is not None:
        x0_hat = inject(x0_hat)
    eps = (e_b - e_s) + e_c
    std = eta * (1 - a_prev)
    direction = math.sqrt(max(1 - a_prev - std, 0.0)) * eps
    return math.sqrt(a_prev) * x0_hat + direction + math.sqrt(std) * noise, x0_hat


def source_step(x_s: torch.Tensor, z0: torch.Tensor, a: float, a_prev: float,
                noise: torch.Tensor, eta: float = 1.0) -> torch.Tensor:
    """The source branch's update: its clean estimate is ``z0`` itself."""
    e_c = (x_s - math.sqrt(a) * z0) / math.sqrt(1 - a)
    std = eta * (1 - a_prev)
    return math.sqrt(a_prev) * z0 + math.sqrt(max(1 - a_prev - std, 0.0)) * e_c + math.sqrt(std) * noise


def guided(noise_pred: torch.Tensor, guidance: Guidance) -> tuple[torch.Tensor, ...]:
    """Split a batch-of-6 UNet output into guided (e_s, e_t, e_m)."""
    uncond, cond = noise_pred.float().chunk(2)
    scales = (guidance.source, guidance.target, guidance.source)
    return tuple(uncond[i:i + 1] + s * (cond[i:i + 1] - uncond[i:i + 1]) for i, s in enumerate(scales))


def sample(backbone: Backbone, controller: AttentionController | None, z0: torch.Tensor,
           embeddings: torch.Tensor, *, steps: int, original_steps: int, guidance: Guidance,
           seed: int, opt_start: float = 1.0, inject: Injector | None = None,
           on_step: StepCallback | None = None, eta: float = 1.0) -> SamplerOutput:
    """Run the three branches together, one batched UNet call per step.

    ``embeddings`` is the (6, tokens, dim) batch ``[src_neg, tgt_neg, src_neg, src, tgt, src]``;
    ``inject`` optimises the target's clean estimate at the steps of ``injection_steps``.
    """
    timesteps = schedule(backbone, steps, original_steps)
    alphas = backbone.scheduler.alphas_cumprod
    generator = torch.Generator("cpu").manual_seed(seed)
    z0 = z0.float()
    start = torch.randn(z0.shape, generator=generator).to(z0.device)
    x_s, x_t, x_m = start.clone(), start.clone(), start.clone()
    inject_at = set(injection_steps(len(timesteps), opt_start)) if inject is not None else set()
    out = SamplerOutput(latent=z0, mutual_latent=z0)
    for i, t in enumerate(timesteps):
        a = float(alphas[t])
        a_prev = float(alphas[timesteps[i + 1]]) if i + 1 < len(timesteps) else a
        if controller is not None:
            controller.begin_step(i)
        began = time.perf_counter()
        latents = torch.cat([x_s, x_t, x_m] * 2)
        noise_pred = backbone.predict_noise(latents, t, embeddings)
        out.unet_seconds += time.perf_counter() - began
        e_s, e_t, e_m = guided(noise_pred, guidance)
        # one noise draw per step, shared by the branches (DESIGN.md section 2)
        noise = torch.randn(z0.shape, generator=generator).to(z0.device)
        hook = None
        if i in inject_at:
            out.steps_injected.append(i)
            hook = inject
        began = time.perf_counter()
        x_t_next, x0_t = virtual_inversion_step(x_s, x_t, z0, e_s, e_t, a, a_prev, noise, eta, hook)
        if hook is not None:
            out.inject_seconds += time.perf_counter() - began
        x_m_next, x0_m = virtual_inversion_step(x_s, x_m, z0, e_s, e_m, a, a_prev, noise, eta)
        x_s_next = source_step(x_s, z0, a, a_prev, noise, eta)
        if controller is not None:
            x_t_next = controller.blend(x_t_next, x_s_next)
        x_s, x_t, x_m = x_s_next, x_t_next, x_m_next
        out.latent, out.mutual_latent = x0_t, x0_m
        if on_step is not None:
            on_step(i, len(timesteps), x0_t)
    return out
