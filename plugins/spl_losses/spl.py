"""SPL: the bidirectional local-linear structure preservation loss (DESIGN.md section 3)."""

from __future__ import annotations

import torch

from spl_sdk.components import LossTerm
from spl_sdk.filters import box_filter


def window_counts(height: int, width: int, r: int, like: torch.Tensor) -> torch.Tensor:
    """Pixels inside each clipped (2r+1) x (2r+1) window, as (1, 1, H, W)."""
    def along(n: int) -> torch.Tensor:
        i = torch.arange(n, device=like.device)
        return ((i + r).clamp(max=n - 1) - (i - r).clamp(min=0) + 1).to(like.dtype)

    return (along(height)[:, None] * along(width)[None, :])[None, None]


class SPLLoss(LossTerm):
    """Structure preservation loss: each image a local linear function of the other (SPL)."""

    name = "spl"
    default_weight = 10000.0
    radius = 5
    eps = 1e-4

    def _fit(self, intensity: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Window statistics and the local linear coefficients a, b (P ~ a I + b), a', b' (I ~ a' P + b').

        ``p`` may carry autograd history; the coefficients are computed from
        detached statistics because SPL treats them as constants.
        """
        r = self.radius
        m_i, m_ii = box_filter(torch.cat([intensity, intensity * intensity], 1), r).split(1, 1)
        m_p, m_pp, m_ip = box_filter(torch.cat([p, p * p, intensity * p], 1), r).split(1, 1)
        var_i = m_ii - m_i * m_i
        var_p = m_pp - m_p * m_p
        cov = m_ip - m_i * m_p
        with torch.no_grad():
            a = cov / (var_i + self.eps)
            a2 = cov / (var_p + self.eps)
        return m_i, m_p, var_i, var_p, cov, a, a2

    def value(self, source01: torch.Tensor, edited01: torch.Tensor) -> torch.Tensor:
        """Mean over pixels of R1 + R2, the window residuals of both local linear fits."""
        intensity = source01.mean(1, keepdim=True)
        p = edited01.mean(1, keepdim=True)
        _, _, var_i, var_p, cov, a, a2 = self._fit(intensity, p)
        # With b = mP - a mI, DESIGN's R1 = mPP + a^2 mII + b^2 - 2a mIP - 2b mP + 2ab mI equals
        # varP - 2a cov + a^2 varI, and (a, b constant) its gradient in P is the same; this form
        # avoids subtracting large, nearly equal float32 terms. Likewise for R2 with a', b'.
        r1 = var_p - 2 * a * cov + a * a * var_i
        r2 = var_i - 2 * a2 * cov + a2 * a2 * var_p
        return (r1 + r2).mean()

    def value_and_grad(self, source: torch.Tensor, edited: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted SPL and its closed-form gradient in ``edited`` (no autograd, six box filters)."""
        with torch.no_grad():
            s01, e01 = self.prepare(source, edited)
            intensity = s01.mean(1, keepdim=True)
            p = e01.mean(1, keepdim=True)
            del s01, e01
            m_i, m_p, var_i, var_p, cov, a, a2 = self._fit(intensity, p)
            r1r2 = var_p - 2 * a * cov + a * a * var_i + var_i - 2 * a2 * cov + a2 * a2 * var_p
            value = r1r2.mean()
            del r1r2, var_i, var_p, cov
            b = m_p - a * m_i
            b2 = m_i - a2 * m_p
            del m_i, m_p
            # d/dP_j of sum_i box_i((a I + b - P)^2 + (a' P + b' - I)^2) sums over the windows i that
            # contain j; with clipped windows sum_{i in W_j} x_i / N_i = N_j box(x / N)_j, so
            # dSPL/dP = 2/M N (P box((1 + a'^2)/N) - I box((a + a')/N) - box((b - a' b')/N)).
            h, w = p.shape[-2:]
            n = window_counts(h, w, self.radius, p)
            coeffs = torch.cat([(1 + a2 * a2) / n, (a + a2) / n, (b - a2 * b2) / n], 1)
            del a, a2, b, b2
            c_pp, c_ip, c_1 = box_filter(coeffs, self.radius).split(1, 1)
            del coeffs
            grad_p = p * c_pp - intensity * c_ip - c_1
            grad_p *= n * (2.0 / grad_p.numel())
            # P = m * mean_c((E_c + 1) / 2): every channel receives m / 6 of dL/dP
            scale = self.weight / 6.0
            if self.mask is not None:
                grad_p = grad_p * self.mask_like(edited)
            grad = (grad_p * scale).expand_as(edited).contiguous()
        return self.weight * value, grad
