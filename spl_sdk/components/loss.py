"""Base class of loss terms (docs/method.md section 3)."""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import ClassVar, NamedTuple

from spl_sdk.components.base import Component, ComponentOptions
from spl_sdk.errors import ConfigError
from spl_sdk.lazy import functional as F
from spl_sdk.lazy import torch


class ClosedForm(NamedTuple):
    """A loss term's value, gradient and curvature at one image (what :meth:`LossTerm.closed_form` returns)."""

    value: torch.Tensor  # the weighted loss
    grad: torch.Tensor  # its gradient in the edited image (may be a view broadcast over channels)
    curvature: torch.Tensor | None  # a per-pixel diagonal bound of the Hessian, or None
    # The weighted function whose gradient ``grad`` really is, when that is not ``value``: a loss
    # that holds fitted coefficients fixed (SPL's a, b, a', b') follows the gradient of its fit
    # objective, regularizer included. The fast solver backtracks and stops on this one.
    potential: torch.Tensor | float | None = None

    @property
    def objective(self) -> torch.Tensor | float:
        """The potential if there is one, else the value: what a descent along ``-grad`` lowers."""
        return self.value if self.potential is None else self.potential


# methods derived from ``value`` and ``closed_form``: a subclass that overrode one of them could
# make a default call an override that calls the default back, so they are not overridable
_DERIVED = ("__call__", "value_and_grad", "value_grad_and_curvature")


class LossTerm(Component):
    """A pixel-space loss between a source and an edited image (docs/method.md section 3).

    Images are (B, 3, H, W) in [-1, 1]. A subclass implements :meth:`value` on
    images already mapped to [0, 1] and masked; that alone works with every
    solver (gradients by autograd). :meth:`closed_form` is the one optional
    override, for a gradient (and curvature) cheaper than autograd.
    """

    kind: ClassVar[str] = "loss"
    kind_label: ClassVar[str] = "loss term"
    register_hook: ClassVar[str] = "spl_register_loss_terms"

    default_weight: ClassVar[float] = 1000.0
    # True when the term never asks the edit's local mean intensity to change (it compares
    # structure, like SPL, or chroma only, like CPL): the default solver then holds that
    # intensity at the start's and only adds detail (docs/method.md section 3).
    keeps_local_intensity: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        for name in _DERIVED:
            if name in cls.__dict__:
                raise TypeError(f"loss term {cls.__qualname__} overrides {name}(), which is derived from "
                                f"value() and closed_form(); implement value() and, for a closed-form "
                                f"gradient, override closed_form() instead.")

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

    def closed_form(self, source: torch.Tensor, edited: torch.Tensor
                    ) -> ClosedForm | tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None:
        """Optional override: weighted loss, its gradient in ``edited`` and a per-pixel curvature, or None.

        Returns a :class:`ClosedForm` (a plain 3-tuple is accepted too); images
        are in [-1, 1]. The curvature (a diagonal bound of the Hessian,
        broadcastable to the image, or None if unknown) lets the default solver
        take steps that do not shrink as the image grows. A term whose gradient
        holds fitted quantities fixed also gives the ``potential`` that gradient
        belongs to, so that the solver's stop and backtracking follow the same
        function as its steps. Must not call
        :meth:`value_and_grad` or :meth:`value_grad_and_curvature`, which call
        it. The default returns None: gradients then come from autograd on
        :meth:`value`.
        """
        return None

    def __call__(self, source: torch.Tensor, edited: torch.Tensor) -> torch.Tensor:
        """``weight * value`` for images in [-1, 1] (differentiable; never calls :meth:`closed_form`)."""
        return self.weight * self.value(*self.prepare(source, edited))

    def value_grad_and_curvature(self, source: torch.Tensor, edited: torch.Tensor) -> ClosedForm:
        """Weighted loss, its gradient in ``edited`` and the curvature: :meth:`closed_form`, else autograd."""
        found = self.closed_form(source, edited)
        if found is not None:
            return found if isinstance(found, ClosedForm) else ClosedForm(*found)
        with torch.enable_grad():
            e = edited.detach().requires_grad_(True)
            loss = self(source.detach(), e)
            (grad,) = torch.autograd.grad(loss, e)
        return ClosedForm(loss.detach(), grad, None)

    def value_and_grad(self, source: torch.Tensor, edited: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted loss and its gradient in ``edited`` (closed form if the term has one, else autograd)."""
        found = self.value_grad_and_curvature(source, edited)
        return found.value, found.grad
