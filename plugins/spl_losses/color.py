"""CPL: the colour preservation loss on the chroma channels (docs/method.md section 3)."""

from __future__ import annotations

from spl_sdk.components import ClosedForm, LossTerm
from spl_sdk.lazy import torch

# ITU-R BT.601 rows of Cb and Cr for RGB in [0, 1]; both get a 0.5 offset
_CHROMA = ((-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))


def chroma(image01: torch.Tensor) -> torch.Tensor:
    """Cb and Cr (B, 2, H, W) in [0, 1] of an RGB image (B, 3, H, W) in [0, 1]."""
    k = torch.tensor(_CHROMA, dtype=image01.dtype, device=image01.device)
    return torch.einsum("kc,bchw->bkhw", k, image01) + 0.5


class CPLLoss(LossTerm):
    """Colour preservation loss: MSE between the Cb/Cr chroma of source and edit (CPL)."""

    name = "cpl"
    default_weight = 1000.0

    def value(self, source01: torch.Tensor, edited01: torch.Tensor) -> torch.Tensor:
        """Mean squared chroma difference (the 0.5 offsets cancel)."""
        return (chroma(edited01) - chroma(source01)).square().mean()


    def closed_form(self, source: torch.Tensor, edited: torch.Tensor
                                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Weighted CPL, its gradient and a per-pixel diagonal curvature bound (row sums of |K^T K|)."""
        with torch.no_grad():
            s01, e01 = self.prepare(source, edited)
            diff = chroma(e01) - chroma(s01)
            del s01, e01
            value = diff.square().mean()
            k = torch.tensor(_CHROMA, dtype=diff.dtype, device=diff.device)
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
