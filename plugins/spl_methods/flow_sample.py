"""Plain text-to-image sampling of a flow backbone (Euler on the family's schedule), as the diffusers pipelines."""

from __future__ import annotations

from typing import Any

from spl_methods.velocity import GuidedVelocity
from spl_sdk.lazy import no_grad, torch


def euler(z: torch.Tensor, v: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
    """One Euler step of dz/dt = v from t to t_next (float32, as FlowMatchEulerDiscreteScheduler)."""
    return z.float() + (t_next - t) * v


def initial_noise(backbone: Any, height: int, width: int, seed: int) -> torch.Tensor:
    """(1, C, h, w) Gaussian latent drawn on the CPU from ``seed`` (the pipelines' CPU-generator draw)."""
    f = backbone.vae_scale_factor
    channels = backbone.vae.config.latent_channels
    generator = torch.Generator("cpu").manual_seed(seed)
    return torch.randn((1, channels, height // f, width // f), generator=generator).to(backbone.device)


@no_grad
def text_to_image(backbone: Any, prompt: str, *, steps: int, guidance: float, seed: int,
                  height: int, width: int, latents: torch.Tensor | None = None) -> torch.Tensor:
    """The clean latent (1, C, h, w) sampled from ``prompt``; decode it with ``decode_latents``."""
    z = initial_noise(backbone, height, width, seed) if latents is None else latents.float()
    velocity = GuidedVelocity(backbone, [prompt], [guidance])
    timesteps = backbone.timesteps(steps, latent_shape=tuple(z.shape))
    sigmas = backbone.sigmas(steps, latent_shape=tuple(z.shape))
    for i, t in enumerate(timesteps):
        (v,) = velocity([z], t)
        z = euler(z, v, sigmas[i], sigmas[i + 1])
    return z
