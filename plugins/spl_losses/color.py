"""CPL: the color preservation loss on the chroma channels (docs/method.md section 3)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from spl_sdk.components import ClosedForm, ComponentOptions, LossTerm
from spl_sdk.lazy import torch

# ITU-R BT.601 rows of Cb and Cr for RGB in [0, 1]; both get a 0.5 offset
_BT601 = ((-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))
# kornia's rgb_to_ycbcr, which the paper's code calls: Y = 0.299 R + 0.587 G + 0.114 B,
# Cb = 0.564 (B - Y), Cr = 0.713 (R - Y); the same rows rounded to three digits
_Y = (0.299, 0.587, 0.114)
_KORNIA = ((-0.564 * _Y[0], -0.564 * _Y[1], 0.564 * (1 - _Y[2])),
           (0.713 * (1 - _Y[0]), -0.713 * _Y[1], -0.713 * _Y[2]))
ROWS = {"bt601": _BT601, "kornia": _KORNIA}


def chroma(image01: torch.Tensor, convention: str = "bt601") -> torch.Tensor:
    """Cb and Cr (B, 2, H, W) in [0, 1] of an RGB image (B, 3, H, W) in [0, 1].

    ``kornia`` follows kornia's operations in their order (Y first, then the scaled
    differences), so its float32 rounding is the paper code's too.
    """
    if convention == "kornia":
        r, g, b = image01[:, 0], image01[:, 1], image01[:, 2]
        y = _Y[0] * r + _Y[1] * g + _Y[2] * b
        return torch.stack([(b - y) * 0.564 + 0.5, (r - y) * 0.713 + 0.5], 1)
    k = torch.tensor(ROWS[convention], dtype=image01.dtype, device=image01.device)
    return torch.einsum("kc,bchw->bkhw", k, image01) + 0.5


class CPLLoss(LossTerm):
    """Color preservation loss: MSE between the Cb/Cr chroma of source and edit (CPL)."""

    name = "cpl"
    default_weight = 1000.0
    keeps_local_intensity = True  # chroma only: its gradient never changes the channels' mean

    class Options(ComponentOptions):
        """Set with --option cpl.chroma=kornia; ``--profile paper`` sets kornia unless given."""

        chroma: Literal["bt601", "kornia"] = Field(
            "bt601", description="Chroma rows: exact ITU-R BT.601 (bt601), or kornia's rgb_to_ycbcr "
                                 "(Cb = 0.564 (B - Y), Cr = 0.713 (R - Y)) as the paper's code uses.")

    profile_options: ClassVar[dict[str, dict[str, Any]]] = {"paper": {"chroma": "kornia"}}

    def value(self, source01: torch.Tensor, edited01: torch.Tensor) -> torch.Tensor:
        """Mean squared chroma difference (the 0.5 offsets cancel)."""
        convention = self.options.chroma
        return (chroma(edited01, convention) - chroma(source01, convention)).square().mean()

    def closed_form(self, source: torch.Tensor, edited: torch.Tensor) -> ClosedForm:
        """Weighted CPL, its gradient and a per-pixel diagonal curvature bound (row sums of |K^T K|)."""
        with torch.no_grad():
            s01, e01 = self.prepare(source, edited)
            diff = chroma(e01, self.options.chroma) - chroma(s01, self.options.chroma)
            del s01, e01
            value = diff.square().mean()
            k = torch.tensor(ROWS[self.options.chroma], dtype=diff.dtype, device=diff.device)
            # dL/dE = 2 diff / numel, back through the chroma rows, times d(E01)/dE = m / 2
            scale = self.weight / diff.numel()
            grad = torch.einsum("kc,bkhw->bchw", k, diff) * scale
            # Hessian per pixel: weight 2/numel K^T K (m/2)^2
            curv = ((k.T @ k).abs().sum(1) * (scale / 2)).view(1, 3, 1, 1)
            if self.mask is not None:
                m = self.mask_like(edited)
                grad *= m
                curv = curv * m * m
        return ClosedForm(self.weight * value, grad, curv)
