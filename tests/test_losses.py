"""The built-in loss terms (docs/method.md section 3): values, closed-form gradients, masks and weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import EXAMPLES

from spl_losses import CPLLoss, L1Loss, MSELoss, SPLLoss
from spl_sdk.components import LossTerm

TERMS = {"spl": SPLLoss, "cpl": CPLLoss, "l1": L1Loss, "mse": MSELoss}


def random_pair(h: int = 12, w: int = 9, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(batch, 3, h, w, generator=g, dtype=torch.float64) * 2 - 1
    e = torch.rand(batch, 3, h, w, generator=g, dtype=torch.float64) * 2 - 1
    return s, e


def photo(h: int = 48, w: int = 64, name: str = "old_man.png") -> torch.Tensor:
    """An example photo as (1, 3, h, w) in [-1, 1], float64."""
    from PIL import Image

    with Image.open(EXAMPLES / name) as img:
        img = img.convert("RGB").resize((w, h), Image.Resampling.LANCZOS)
    t = torch.from_numpy(np.asarray(img, dtype=np.float64)).permute(2, 0, 1)
    return (t / 127.5 - 1)[None]


def direct_spl(source: torch.Tensor, edited: torch.Tensor, r: int = 5, eps: float = 1e-4) -> float:
    """SPL by explicit loops over every clipped window, written from docs/method.md section 3."""
    intensity = ((source[0] + 1) / 2).mean(0).tolist()
    p = ((edited[0] + 1) / 2).mean(0).tolist()
    h, w = len(intensity), len(intensity[0])
    total = 0.0
    for y in range(h):
        for x in range(w):
            win = [(j, i) for j in range(max(0, y - r), min(h, y + r + 1))
                   for i in range(max(0, x - r), min(w, x + r + 1))]
            n = len(win)
            vi = [intensity[j][i] for j, i in win]
            vp = [p[j][i] for j, i in win]
            m_i, m_p = sum(vi) / n, sum(vp) / n
            m_ii = sum(v * v for v in vi) / n
            m_pp = sum(v * v for v in vp) / n
            m_ip = sum(a * b for a, b in zip(vi, vp, strict=True)) / n
            a = (m_ip - m_i * m_p) / (m_ii - m_i ** 2 + eps)
            b = m_p - a * m_i
            a2 = (m_ip - m_i * m_p) / (m_pp - m_p ** 2 + eps)
            b2 = m_i - a2 * m_p
            r1 = sum((a * i + b - q) ** 2 for i, q in zip(vi, vp, strict=True)) / n
            r2 = sum((a2 * q + b2 - i) ** 2 for i, q in zip(vi, vp, strict=True)) / n
            total += r1 + r2
    return total / (h * w)


def design_spl(source: torch.Tensor, edited: torch.Tensor, r: int = 5, eps: float = 1e-4) -> torch.Tensor:
    """SPL with the method's expanded R1/R2 formulas, a, b, a', b' detached, and a pooling box filter."""
    def box(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2 * r + 1, 1, r, count_include_pad=False)

    intensity = ((source + 1) / 2).mean(1, keepdim=True)
    p = ((edited + 1) / 2).mean(1, keepdim=True)
    m_i, m_p, m_ip, m_ii, m_pp = (box(t) for t in (intensity, p, intensity * p, intensity ** 2, p * p))
    cov = m_ip - m_i * m_p
    a = (cov / (m_ii - m_i ** 2 + eps)).detach()
    b = (m_p - a * m_i).detach()
    a2 = (cov / (m_pp - m_p ** 2 + eps)).detach()
    b2 = (m_i - a2 * m_p).detach()
    r1 = m_pp + a ** 2 * m_ii + b ** 2 - 2 * a * m_ip - 2 * b * m_p + 2 * a * b * m_i
    r2 = m_ii + a2 ** 2 * m_pp + b2 ** 2 - 2 * a2 * m_ip - 2 * b2 * m_i + 2 * a2 * b2 * m_p
    return (r1 + r2).mean()


# ----------------------------------------------------------------- registration and weights
def test_plugin_registers_the_four_terms_with_their_default_weights(plugins):
    assert {"spl", "cpl", "l1", "mse"} <= set(plugins.names("loss"))
    expected = {"spl": 10000.0, "cpl": 1000.0, "l1": 1000.0, "mse": 1000.0}
    for name, weight in expected.items():
        cls = plugins.loss_term(name)
        assert issubclass(cls, LossTerm) and cls is TERMS[name]
        assert cls().weight == weight


@pytest.mark.parametrize("name", sorted(TERMS))
def test_weight_scales_value_and_gradient(name):
    s, e = random_pair()
    v1, g1 = TERMS[name](weight=1.0).value_and_grad(s, e)
    v3, g3 = TERMS[name](weight=3.0).value_and_grad(s, e)
    assert float(v1) > 0
    assert torch.allclose(v3, 3 * v1) and torch.allclose(g3, 3 * g1)
    assert torch.allclose(TERMS[name](weight=3.0)(s, e), 3 * TERMS[name](weight=1.0)(s, e))


# ----------------------------------------------------------------- SPL values
@pytest.mark.parametrize("seed", [0, 1])
def test_spl_matches_direct_per_window_computation(seed):
    s, e = random_pair(12, 9, seed=seed)
    expected = direct_spl(s, e)
    assert float(SPLLoss(weight=1.0)(s, e)) == pytest.approx(expected, rel=1e-9)
    assert float(SPLLoss(weight=1.0).value_and_grad(s, e)[0]) == pytest.approx(expected, rel=1e-9)
    assert float(design_spl(s, e)) == pytest.approx(expected, rel=1e-9)


def test_spl_with_mask_matches_direct_computation_of_masked_images():
    s, e = random_pair(12, 9, seed=2)
    mask = torch.zeros(1, 1, 12, 9, dtype=torch.float64)
    mask[..., 2:9, 1:7] = 1.0
    mask[..., 5, 3] = 0.5
    # masking multiplies the [0, 1] images: (x + 1) / 2 * m = (x' + 1) / 2 with x' = (x + 1) m - 1
    expected = direct_spl((s + 1) * mask - 1, (e + 1) * mask - 1)
    assert float(SPLLoss(weight=1.0, mask=mask)(s, e)) == pytest.approx(expected, rel=1e-9)


def test_spl_is_near_zero_for_a_global_affine_intensity_change():
    s = photo()
    affine = (0.5 * (s + 1) / 2 + 0.2) * 2 - 1  # E01 = 0.5 S01 + 0.2
    blurred = F.avg_pool2d(s, 5, 1, 2, count_include_pad=False)
    spl = SPLLoss(weight=1.0)
    # not exactly 0: eps = 1e-4 regularizes a and a' in flat windows, so R1 + R2 <= ~eps per pixel
    assert float(spl(s, affine)) < 1e-4
    assert float(spl(s, affine)) < 5e-3 * float(spl(s, blurred))
    assert float(spl(s, s)) < 5e-3 * float(spl(s, blurred))


def test_spl_rises_with_blur_and_edge_shifts():
    s = photo()
    spl = SPLLoss()
    values = [float(spl(s, s))]
    for k in (3, 5, 9):
        values.append(float(spl(s, F.avg_pool2d(s, k, 1, k // 2, count_include_pad=False))))
    assert values == sorted(values) and values[-1] > 100 * values[0]
    shifted = torch.roll(s, shifts=(0, 2), dims=(2, 3))
    assert float(spl(s, shifted)) > 100 * values[0]


# ----------------------------------------------------------------- gradients
@pytest.mark.parametrize("masked", [False, True])
def test_spl_closed_form_gradient_matches_autograd(masked):
    s, e = random_pair(12, 9, batch=2, seed=3)
    mask = torch.rand(1, 1, 12, 9, dtype=torch.float64) if masked else None
    term = SPLLoss(mask=mask)
    value, grad = term.value_and_grad(s, e)
    x = e.clone().requires_grad_(True)
    term(s, x).backward()
    assert torch.allclose(value, term(s, e), rtol=1e-12)
    assert torch.allclose(grad, x.grad, rtol=1e-9, atol=1e-12)
    # and against the method's expanded formula, independent of the loss module
    y = e.clone().requires_grad_(True)
    m = 1.0 if mask is None else mask
    (term.weight * design_spl((s + 1) * m - 1, (y + 1) * m - 1)).backward()
    assert torch.allclose(grad, y.grad, rtol=1e-9, atol=1e-12)


def fit_objective(source: torch.Tensor, edited: torch.Tensor, r: int = 5, eps: float = 1e-4) -> torch.Tensor:
    """Mean over windows of min over (a, b) of mean (P - a I - b)^2 + eps a^2, plus the same for I from P.

    Minimizing out the coefficients: varP - cov^2 / (varI + eps) + varI - cov^2 / (varP + eps),
    with nothing held fixed, so autograd gives its true gradient.
    """
    i, p = ((source + 1) / 2).mean(1, keepdim=True), ((edited + 1) / 2).mean(1, keepdim=True)
    box = lambda x: F.avg_pool2d(x, 2 * r + 1, 1, r, count_include_pad=False)  # noqa: E731
    var_i, var_p, cov = box(i * i) - box(i) ** 2, box(p * p) - box(p) ** 2, box(i * p) - box(i) * box(p)
    return (var_p - cov**2 / (var_i + eps) + var_i - cov**2 / (var_p + eps)).mean()


def test_spl_lower_bound_is_below_every_image_and_matches_a_search():
    s = photo(48, 64)
    term = SPLLoss()
    bound = term.lower_bound(s)
    flat = torch.zeros_like(s)
    g = torch.Generator().manual_seed(7)
    noise = torch.rand(s.shape, generator=g, dtype=s.dtype) * 2 - 1
    from spl_sdk.descent import descend

    # the unconstrained descent (the default solver holds the start's local intensity, which a
    # minimizer from noise must not)
    refined = descend(s.float(), noise.float().clone(), [term], 200, rtol=0.0)[0].double()
    for image in (s, flat, noise, refined, 0.3 * s, s.flip(-1)):
        assert bound <= float(term(s, image))
    assert float(term(s, refined)) < 1.3 * bound  # not vacuous: a solver from noise ends near it (1.17x)
    # the closed-form minimizer over varP against a search on a fine grid
    i = ((s + 1) / 2).mean(1, keepdim=True)
    box = lambda x: F.avg_pool2d(x, 11, 1, 5, count_include_pad=False)  # noqa: E731
    v = (box(i * i) - box(i) ** 2).clamp(min=0).reshape(-1, 1)
    q = torch.cat([torch.zeros(1, dtype=v.dtype), torch.logspace(-12, 0, 4000, dtype=v.dtype)])[None]
    e = term.eps
    searched = (q * e**2 / (v + e) ** 2 + v * e**2 / (q + e) ** 2).min(1).values.mean()
    assert bound == pytest.approx(term.weight * float(searched), rel=1e-4)


def test_spl_gradient_is_the_true_gradient_of_its_potential():
    # SPL holds a, a' fixed, so its gradient is that of the fit objective it reports as potential
    s, e = random_pair(14, 11, seed=6)
    term = SPLLoss()
    found = term.value_grad_and_curvature(s, e)
    y = e.clone().requires_grad_(True)
    potential = term.weight * fit_objective(s, y)
    potential.backward()
    assert float(found.potential) == pytest.approx(float(potential.detach()), rel=1e-9)
    assert torch.allclose(found.grad.expand_as(e), y.grad, rtol=1e-8, atol=1e-12)
    # and the two differ: the potential adds eps (a^2 + a'^2) to what SPL reports
    assert float(found.potential) > float(found.value) * (1 + 1e-6)
    assert found.objective is found.potential


@pytest.mark.parametrize("name", ["cpl", "l1", "mse"])
@pytest.mark.parametrize("masked", [False, True])
def test_pixel_and_color_closed_form_gradients_match_autograd(name, masked):
    s, e = random_pair(6, 5, batch=2, seed=4)
    term = TERMS[name](mask=torch.rand(2, 1, 6, 5, dtype=torch.float64) if masked else None)
    value, grad = term.value_and_grad(s, e)
    x = e.clone().requires_grad_(True)
    term(s, x).backward()
    assert torch.allclose(value, term(s, e))
    assert torch.allclose(grad, x.grad, rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("name", ["spl", "cpl", "mse"])
def test_curvature_is_the_row_sum_bound_of_the_fixed_coefficient_hessian(name):
    s, e = random_pair(4, 3, seed=5)
    mask = torch.rand(1, 1, 4, 3, dtype=torch.float64)
    term = TERMS[name](mask=mask)
    m = mask

    def loss(x: torch.Tensor) -> torch.Tensor:
        if name == "spl":  # a, b, a', b' constants, as SPL defines them
            return term.weight * design_spl((s + 1) * m - 1, (x + 1) * m - 1)
        return term(s, x)

    hessian = torch.autograd.functional.hessian(loss, e).reshape(e.numel(), e.numel())
    curv = term.value_grad_and_curvature(s, e).curvature
    assert torch.allclose(curv.expand_as(e).reshape(-1), hessian.abs().sum(1), rtol=1e-9)


@pytest.mark.parametrize("name", sorted(TERMS))
@pytest.mark.parametrize("level", [-1.0, 1.0])
@pytest.mark.parametrize("masked", [False, True])
def test_gradients_are_finite_on_constant_images(name, level, masked):
    s = torch.full((1, 3, 16, 12), level)
    e = torch.full((1, 3, 16, 12), level)
    mask = torch.ones(1, 1, 16, 12) if masked else None
    term = TERMS[name](mask=mask)
    value, grad = term.value_and_grad(s, e)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    x = e.clone().requires_grad_(True)
    term(s, x).backward()
    assert torch.isfinite(x.grad).all()
    other = torch.full_like(e, -level)  # a constant edit of another level
    assert torch.isfinite(term.value_and_grad(s, other)[1]).all()


@pytest.mark.parametrize("name", sorted(TERMS))
def test_mask_zeroes_the_gradient_outside_the_mask(name):
    s, e = random_pair(16, 12, seed=6)
    mask = torch.zeros(1, 1, 16, 12, dtype=torch.float64)
    mask[..., 4:12, 3:9] = 1.0
    _, grad = TERMS[name](mask=mask).value_and_grad(s, e)
    outside = (mask == 0).expand_as(grad)
    assert grad[outside].abs().max() == 0
    assert grad[~outside].abs().max() > 0


def test_mask_of_another_size_is_resized():
    s, e = random_pair(16, 12, seed=7)
    small = torch.ones(1, 1, 8, 6, dtype=torch.float64)
    assert torch.allclose(SPLLoss(mask=small)(s, e), SPLLoss()(s, e))


# ----------------------------------------------------------------- CPL
def test_cpl_is_zero_for_intensity_changes_that_keep_chroma():
    s = photo(name="cats.png")
    cpl = CPLLoss()
    # a grayscale image stays at Cb = Cr = 0.5 whatever its brightness
    gray = s.mean(1, keepdim=True).expand_as(s)
    assert float(cpl(gray, (gray * 0.6 + 0.3).clamp(-1, 1))) < 1e-12
    # adding the same amount to R, G and B changes Y only (Cb and Cr rows sum to 0)
    brighter = s * 0.8 + 0.1
    assert float(cpl(s * 0.8, brighter)) < 1e-12
    assert float(cpl(s, s.flip(1))) > 1.0  # swapping red and blue changes the colors
    assert float(cpl(s, s.flip(1))) > 1e3 * float(cpl(s * 0.8, brighter.clamp(-1, 1)))


def test_cpl_uses_bt601_chroma():
    from spl_losses.color import chroma

    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    cb, cr = chroma(red).flatten().tolist()
    assert cb == pytest.approx(0.5 - 0.168736) and cr == pytest.approx(1.0)


def test_box_filter_gives_the_same_result_plane_by_plane_on_large_images():
    from spl_sdk.filters import box_filter

    x = torch.rand(1, 2, 1024, 1024, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        one_by_one = box_filter(x, 5)  # planes of 2^20 pixels go one at a time
    with torch.enable_grad():
        together = box_filter(x, 5)
    assert torch.equal(one_by_one, together)
    assert torch.allclose(one_by_one[0, 1, 500, 600], x[0, 1, 495:506, 595:606].mean())
