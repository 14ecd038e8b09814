"""Images to the denoiser's latents and back through a diffusers VAE: ``(latent - shift) * scale``."""

from __future__ import annotations

from typing import Any

from spl_sdk.errors import ImageError
from spl_sdk.lazy import torch


def check_encodable(image: torch.Tensor, multiple: int, backbone: str) -> None:
    """Refuse an image whose sides are not multiples of the VAE's downscaling, naming the size to use."""
    h, w = image.shape[-2:]
    if h % multiple or w % multiple:
        raise ImageError(f"image of {w}x{h} pixels cannot be encoded by {backbone}: width and height must "
                         f"be multiples of {multiple}; resize it to {w // multiple * multiple}x"
                         f"{h // multiple * multiple} first.")


def encode(vae: Any, image: torch.Tensor, device: torch.device, dtype: torch.dtype,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Scaled latents (float32) of images in [-1, 1]: the posterior mean, or a draw with ``generator``."""
    posterior = vae.encode(image.to(device, dtype)).latent_dist
    # sample(): mean + std * one normal draw of the latent's shape in the VAE's dtype
    latent = posterior.mean if generator is None else posterior.sample(generator=generator)
    return (latent.float() - _shift(vae)) * vae.config.scaling_factor


def decode(vae: Any, latents: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Images in [-1, 1] (clamped, float32) from scaled latents."""
    z = latents.to(device, torch.float32) / vae.config.scaling_factor + _shift(vae)
    return vae.decode(z.to(dtype)).sample.float().clamp(-1, 1)


def _shift(vae: Any) -> float:
    """The VAE's latent shift (SD3 and FLUX have one; SD's config has none)."""
    return getattr(vae.config, "shift_factor", None) or 0.0
