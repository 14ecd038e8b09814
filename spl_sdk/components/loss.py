"""Base class of loss terms (DESIGN.md section 3)."""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import ClassVar

import torch
import torch.nn.functional as F

from spl_sdk.components.base import Component, ComponentOptions
from spl_sdk.errors import ConfigError


class LossTerm(Component):
    """A pixel-space loss between a source and an edited image (DESIGN.md section 3).

    Images are (B, 3, H, W) in [-1, 1]; subclasses implement :meth:`value` on
    images already mapped to [0, 1] and masked. Override :meth:`value_and_grad`
    when a closed-form gradient is cheaper than autograd.
    """

    default_weight: ClassVar[float] = 1000.0

    def __init__(self, weight: float | None = None, mask: torch.Tensor | None = None, *,
                 options: ComponentOptions | None = None) -> None:
        self.weight = self.default_weight if weight is None else float(weight)
        if not math.isfinite(self.weight) or isinstance(weight, bool):
            raise ConfigError(f"loss term '{self.name}' got weight {weight!r}; give a finite number "
                              f"(0 to 1e8).")
        self.mask = mask
        self.options = self.make_options(options)

    def prepare(self, source: torch.Tensor, edited: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map both images to [0, 1] and multiply them by the mask (resized to fit) if set."""
        s, e = (source + 1) / 2, (edited + 1) / 2
        if self.mask is not None:
            m = self.mask_like(source)
            s, e = s * m, e * m
        return s, e

    def mask_like(self, image: torch.Tensor) -> torch.Tensor:
        """The mask as (1|B, 1, H, W) at the image's size and dtype."""
        m = self.mask.to(image.device, image.dtype)
        while m.dim() < 4:
            m = m.unsqueeze(0)
        if m.shape[-2:] != image.shape[-2:]:
            m = F.interpolate(m, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return m

    @abstractmethod
    def value(self, source01: torch.Tensor, edited01: torch.Tensor) -> torch.Tensor:
        """Unweighted scalar loss of prepared (mapped, masked) images; differentiable in edited01."""

    def __call__(self, source: torch.Tensor, edited: torch.Tensor) -> torch.Tensor:
        """``weight * value`` for images in [-1, 1]."""
        return self.weight * self.value(*self.prepare(source, edited))

    def value_and_grad(self, source: torch.Tensor, edited: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted loss and its gradient with respect to ``edited`` (autograd by default)."""
        with torch.enable_grad():
            e = edited.detach().requires_grad_(True)
            loss = self(source.detach(), e)
            (grad,) = torch.autograd.grad(loss, e)
        return loss.detach(), grad

    def value_grad_and_curvature(self, source: torch.Tensor, edited: torch.Tensor
                                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Loss, gradient and a per-pixel curvature bound (None if unknown) for the fast solver.

        The default solver divides the gradient by the summed curvature so that its
        steps do not depend on the pixel count; a term that returns None gets a
        uniform share estimated from one extra gradient evaluation.
        """
        return (*self.value_and_grad(source, edited), None)
