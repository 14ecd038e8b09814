"""SPL: the bidirectional local-linear structure preservation loss (docs/method.md section 3)."""

from __future__ import annotations

import weakref
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from spl_sdk.components import ClosedForm, LossTerm
from spl_sdk.components.base import ComponentOptions
from spl_sdk.filters import box_filter
from spl_sdk.lazy import torch


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
    keeps_local_intensity = True  # a window's fits are blind to an offset of P: the edit keeps its light

    class Options(ComponentOptions):
        """Window and regularizer of the local linear model (docs/method.md section 3)."""

        radius: int = Field(5, ge=1, le=64, description="Window radius r: each local linear fit "
                            "covers a (2r+1) x (2r+1) window (the paper's 11 x 11 at r = 5).")
        eps: float = Field(1e-4, gt=0, le=1, description="Regularizer added to the window variances "
                           "of the [0, 1] intensities; larger values ignore fainter edges.")
        residual: Literal["centered", "expanded"] = Field(
            "centered", description="How value() arranges the window residuals: centered (varP - 2a cov + "
                                   "a^2 varI, fewer canceling float32 terms) or expanded (mPP + a^2 mII + "
                                   "b^2 - 2a mIP - 2b mP + 2ab mI, term by term as docs/method.md writes it); "
                                   "equal up to rounding.")

        @field_validator("residual", mode="before")
        @classmethod
        def _old_spelling(cls, value: Any) -> Any:
            return "centered" if value == "centred" else value  # 0.1's spelling, in its saved results

    profile_options: ClassVar[dict[str, dict[str, Any]]] = {"paper": {"residual": "expanded"}}

    def __init__(self, weight: float | None = None, mask: torch.Tensor | None = None, *,
                 options: ComponentOptions | None = None) -> None:
        super().__init__(weight, mask, options=options)
        self.radius: int = self.options.radius
        self.eps: float = self.options.eps
        self._cache: tuple[object, ...] | None = None

    def _coefficients(self, m_i: torch.Tensor, var_i: torch.Tensor, m_p: torch.Tensor,
                      var_p: torch.Tensor, cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """a (P ~ a I + b) and a' (I ~ a' P + b'), detached: SPL treats them as constants."""
        with torch.no_grad():
            return cov / (var_i + self.eps), cov / (var_p + self.eps)

    def value(self, source01: torch.Tensor, edited01: torch.Tensor) -> torch.Tensor:
        """Mean over pixels of R1 + R2, the window residuals of both local linear fits."""
        r = self.radius
        intensity = source01.mean(1, keepdim=True)
        p = edited01.mean(1, keepdim=True)
        m_i, m_ii = box_filter(torch.cat([intensity, intensity * intensity], 1), r).split(1, 1)
        m_p, m_pp, m_ip = box_filter(torch.cat([p, p * p, intensity * p], 1), r).split(1, 1)
        var_i, var_p, cov = m_ii - m_i * m_i, m_pp - m_p * m_p, m_ip - m_i * m_p
        a, a2 = self._coefficients(m_i, var_i, m_p, var_p, cov)
        if self.options.residual == "expanded":  # docs/method.md section 3, term by term
            with torch.no_grad():
                b, b2 = m_p - a * m_i, m_i - a2 * m_p
            r1 = m_pp + a * a * m_ii + b * b - 2 * a * m_ip - 2 * b * m_p + 2 * a * b * m_i
            r2 = m_ii + a2 * a2 * m_pp + b2 * b2 - 2 * a2 * m_ip - 2 * b2 * m_i + 2 * a2 * b2 * m_p
            return (r1 + r2).mean()
        # With b = mP - a mI, docs/method.md's R1 = mPP + a^2 mII + b^2 - 2a mIP - 2b mP + 2ab mI equals
        # varP - 2a cov + a^2 varI, and (a, b constant) its gradient in P is the same; this form
        # avoids subtracting large, nearly equal float32 terms. Likewise for R2 with a', b'.
        r1 = var_p - 2 * a * cov + a * a * var_i
        r2 = var_i - 2 * a2 * cov + a2 * a2 * var_p
        return (r1 + r2).mean()

    def _source_stats(self, source: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """I, box(I), var(I), 1 / (var(I) + eps) and the window counts; cached while ``source`` and the mask are unchanged."""
        mask_key = None if self.mask is None else (id(self.mask), self.mask._version)
        key = (source._version, source.shape, source.dtype, source.device, mask_key, self.radius, self.eps)
        if self._cache is not None and self._cache[0]() is source and self._cache[1] == key:
            return self._cache[2]  # type: ignore[return-value]
        self._cache = None  # free the previous source's planes before computing new ones
        with torch.no_grad():
            intensity = source.mean(1, keepdim=True).add_(1).mul_(0.5)
            if self.mask is not None:
                intensity *= self.mask_like(source)
            m_i, var_i = box_filter(torch.cat([intensity, intensity * intensity], 1), self.radius).split(1, 1)
            var_i.addcmul_(m_i, m_i, value=-1)
            inv_i = var_i.add(self.eps).reciprocal_()
            n = window_counts(*intensity.shape[-2:], self.radius, intensity)
        stats = (intensity, m_i, var_i, inv_i, n)
        self._cache = (weakref.ref(source), key, stats)
        return stats

    def lower_bound(self, source: torch.Tensor) -> float:
        """Weighted SPL below which no image can go against ``source``: how much of a loss is reducible at all.

        Per window, cov^2 <= varI varP gives R1 >= varP eps^2 / (varI + eps)^2 and
        R2 >= varI eps^2 / (varP + eps)^2. Their sum is convex in varP >= 0 and
        least at varP = max(0, cbrt(2 varI (varI + eps)^2) - eps). In flat windows
        (varI well below eps) that is about varI, half the source's own SPL there.
        """
        _, _, var_i, _, _ = self._source_stats(source)
        with torch.no_grad():
            v = var_i.double().clamp(min=0)
            e = self.eps
            q = (2 * v * (v + e) ** 2).pow(1 / 3).sub(e).clamp(min=0)
            per_window = q * e**2 / (v + e) ** 2 + v * e**2 / (q + e) ** 2
        return self.weight * float(per_window.mean())

    def closed_form(self, source: torch.Tensor, edited: torch.Tensor) -> ClosedForm:
        """Weighted SPL, its gradient in ``edited``, a per-pixel diagonal curvature bound and the potential.

        With a, b, a', b' fixed, SPL is a separable quadratic in P whose second
        derivative is 2/M N box((1 + a'^2)/N); in E it is that times (m / 6)^2 on
        every entry of the 3 x 3 channel block, bounded by 3 times that per
        channel. Dividing the gradient by it gives the step that minimizes each
        pixel's P for fixed coefficients (a guided-filter-like update). The
        gradient is the same in every channel and returned as a broadcast view.
        Works on one intensity plane, in place where it can: the image's three
        channels are read once.

        Because a, a' are held fixed, the gradient is not SPL's own but that of
        the fit objective min over (a, b) of the window residual plus eps a^2,
        and likewise for (a', b') (envelope theorem): the potential SPL + eps
        mean(a^2 + a'^2). SPL itself can rise while a descent lowers it.
        """
        intensity, m_i, var_i, inv_i, n = self._source_stats(source)
        with torch.no_grad():
            p = edited.mean(1, keepdim=True).add_(1).mul_(0.5)
            if self.mask is not None:
                p *= self.mask_like(edited)
            stats = box_filter(torch.cat([p, p * p, intensity * p], 1), self.radius)
            m_p, var_p, cov = stats.split(1, 1)
            var_p.addcmul_(m_p, m_p, value=-1)
            cov.addcmul_(m_i, m_p, value=-1)
            a = cov * inv_i
            a2 = var_p.add(self.eps).reciprocal_().mul_(cov)
            # R1 + R2 = varP - 2a cov + a^2 varI + varI - 2a' cov + a'^2 varP (see value())
            r = a * var_i
            r.sub_(cov, alpha=2).mul_(a).add_(var_p).add_(var_i)
            r.addcmul_(a2, var_p.mul(a2).sub_(cov, alpha=2))
            value = r.mean()
            potential = r.addcmul_(a, a, value=self.eps).addcmul_(a2, a2, value=self.eps).mean()
            del r
            # d/dP_j of sum_i box_i((a I + b - P)^2 + (a' P + b' - I)^2) sums over the windows i that
            # contain j; with clipped windows sum_{i in W_j} x_i / N_i = N_j box(x / N)_j, so
            # dSPL/dP = 2/M N (P box((1 + a'^2)/N) - I box((a + a')/N) - box((b - a' b')/N)),
            # b = mP - a mI, b' = mI - a' mP.
            # the three coefficient planes overwrite the statistics' buffer, each once no longer read
            c1 = m_p - a * m_i                # b
            c1.sub_(a2 * (m_i - a2 * m_p))    # b - a' b'
            torch.add(a, a2, out=cov)         # a + a'
            torch.addcmul(torch.ones_like(a2), a2, a2, out=m_p)  # 1 + a'^2
            var_p.copy_(c1)
            del a, a2, c1, m_p, var_p, cov
            coeffs = stats.div_(n)
            c_pp, c_1, c_ip = box_filter(coeffs, self.radius).split(1, 1)
            del coeffs, stats
            grad_p = p.mul_(c_pp).sub_(intensity * c_ip).sub_(c_1)
            # P = m * mean_c((E_c + 1) / 2): every channel receives m / 6 of dL/dP
            scale = n * (2.0 * self.weight / (6.0 * grad_p.numel()))
            grad_p.mul_(scale)
            curv = c_pp.mul_(scale).mul_(0.5)
            del c_ip, c_1, scale
            if self.mask is not None:
                m = self.mask_like(edited)
                grad_p *= m
                curv *= m * m
            grad = grad_p.expand_as(edited)
        return ClosedForm(self.weight * value, grad, curv, self.weight * potential)
