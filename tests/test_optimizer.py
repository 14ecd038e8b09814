"""The image-space optimizer (docs/method.md section 3): reference SGD, the fast solver and their contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import EXAMPLES

from spl_losses import CPLLoss, L1Loss, MSELoss, SPLLoss
from spl_sdk.components import LossTerm
from spl_sdk.optimizer import OptimizeResult, optimize_image


def photo_and_edit(h: int, w: int, name: str = "cats.png", blur: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """A photo in [-1, 1] and a synthetic edit of it: contrast and color change plus a box blur.

    With ``blur=False`` the first is the edit's ideal instead: the same change, unblurred.
    """
    from PIL import Image

    with Image.open(EXAMPLES / name) as img:
        img = img.convert("RGB").resize((w, h), Image.Resampling.LANCZOS)
    s = torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1
    e01 = (0.6 * (s + 1) / 2 + 0.25) * torch.tensor([1.15, 0.95, 0.8]).view(1, 3, 1, 1)
    if not blur:
        return (e01 * 2 - 1).clamp(-1, 1), s
    e01 = F.avg_pool2d(e01, 5, 1, 2, count_include_pad=False)
    return s, (e01 * 2 - 1).clamp(-1, 1)


def hand_written_sgd(source, start, terms, iterations, clamp_each_step=False):
    """The paper's optimizer written out: buf = 0.9 buf + g (NaN -> 0); x -= buf; one clamp at the end."""
    x = start.clone()
    buf = None
    for _ in range(iterations):
        xg = x.clone().requires_grad_(True)
        sum(t(source, xg) for t in terms).backward()
        g = torch.nan_to_num(xg.grad, nan=0.0, posinf=float("inf"), neginf=float("-inf"))
        buf = g.clone() if buf is None else buf.mul(0.9).add(g)
        x = x - buf
        if clamp_each_step:
            x = x.clamp(-1, 1)
    return x.clamp(-1, 1)


def test_reference_solver_is_the_papers_sgd_with_one_final_clamp():
    s, e = photo_and_edit(24, 32)
    terms = [SPLLoss(), CPLLoss()]
    result = optimize_image(s, e, terms, iterations=8, solver="reference")
    expected = hand_written_sgd(s, e, terms, 8)
    assert torch.allclose(result.image, expected, atol=1e-6)
    assert result.iterations == 8  # (at this small size lr 1 overshoots: the loss may rise)
    # pixels leave [-1, 1] during the run here, so a per-step clamp would give another image
    per_step = hand_written_sgd(s, e, terms, 8, clamp_each_step=True)
    assert (result.image - per_step).abs().max() > 1e-2
    assert result.image.min() >= -1 and result.image.max() <= 1


class ValueOnlyLoss(LossTerm):
    """A third-party-style term: ``value`` only (a smoothed L1 on intensities)."""

    name = "value-only"

    def value(self, source01, edited01):
        d = edited01.mean(1) - source01.mean(1)
        return (d * d + 1e-4).sqrt().mean()


@pytest.mark.parametrize("solver", ["fast", "reference"])
def test_a_term_with_only_value_works_with_both_solvers(solver):
    s, e = photo_and_edit(32, 48)
    term = ValueOnlyLoss(weight=1000.0)
    value, grad, curv, potential = term.value_grad_and_curvature(s, e)  # autograd fallback
    assert potential is None
    assert curv is None and grad.shape == e.shape and float(value) == pytest.approx(float(term(s, e)))
    # (lr 1 of the reference SGD suits small weights at this size)
    terms = [term, SPLLoss()] if solver == "fast" else [ValueOnlyLoss(weight=300.0)]
    r = optimize_image(s, e, terms, iterations=30, solver=solver)
    assert r.loss_after < 0.7 * r.loss_before


def test_overriding_a_derived_method_is_refused_with_the_one_to_override():
    for derived in ("value_and_grad", "value_grad_and_curvature", "__call__"):
        with pytest.raises(TypeError, match=f"overrides {derived}.*override closed_form"):
            type("Bad", (LossTerm,), {"name": "bad", "value": lambda self, s, e: (e - s).mean(),
                                      derived: lambda self, s, e: None})


def test_closed_form_is_the_one_override_and_is_used_by_both_helpers():
    calls = []

    class Closed(MSELoss):
        name = "closed"

        def closed_form(self, source, edited):
            calls.append(1)
            return super().closed_form(source, edited)

    s, e = photo_and_edit(8, 8)
    v1, g1 = Closed().value_and_grad(s, e)
    v2, g2, c2, _ = Closed().value_grad_and_curvature(s, e)
    assert len(calls) == 2 and c2 is not None
    assert torch.allclose(g1, g2) and float(v1) == pytest.approx(float(Closed()(s, e)))


def test_a_closed_form_returning_a_plain_tuple_still_works():
    # closed forms written before ClosedForm existed return (value, grad, curvature)
    class Plain(MSELoss):
        name = "plain-tuple"

        def closed_form(self, source, edited):
            value, grad, curv, _ = super().closed_form(source, edited)
            return value, grad, curv

    s, e = photo_and_edit(16, 16)
    found = Plain().value_grad_and_curvature(s, e)
    assert found.potential is None and found.objective is found.value
    assert optimize_image(s, e, [Plain()], iterations=20).loss_after < 0.1 * float(Plain()(s, e))


def local_mean(image: torch.Tensor, cell: int = 16) -> torch.Tensor:
    """The intensity averaged over cells (what the edit's light is at that scale)."""
    return F.avg_pool2d(image.mean(1, keepdim=True), cell, cell, ceil_mode=True)


def edge_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Correlation of the intensities' gradient magnitudes (finite differences)."""
    def magnitude(x: torch.Tensor) -> torch.Tensor:
        i = x.mean(1)
        return ((i[:, 1:, 1:] - i[:, :-1, 1:]) ** 2 + (i[:, 1:, 1:] - i[:, 1:, :-1]) ** 2).sqrt().flatten()

    u, v = magnitude(a), magnitude(b)
    return float(torch.corrcoef(torch.stack([u, v]))[0, 1])


def test_the_bundled_pair_gains_the_sources_edges_and_keeps_the_edits_light():
    # the demo of tox -e demo. The earlier criterion ("SPL at most the first release's 0.107") is
    # withdrawn: chasing SPL below where the result improves darkens flat areas (issue 26); the
    # result is now judged against a known ideal (tests/test_refine_quality.py) and here by what
    # refine is for: the source's edges in the edit's light
    from PIL import Image

    def load(name: str) -> torch.Tensor:
        with Image.open(EXAMPLES / name) as img:
            t = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32))
        return t.permute(2, 0, 1)[None] / 127.5 - 1

    s, e = load("old_man.png"), load("old_man_edited.png")
    r = optimize_image(s, e, [SPLLoss()])
    assert edge_correlation(r.image, s) > edge_correlation(e, s) + 0.5  # measured 0.25 -> 1.00
    assert (local_mean(r.image) - local_mean(e)).abs().max() < 0.03  # measured 0.011
    assert r.loss_after < 0.05 * r.loss_before and r.iterations < 100


def test_the_fast_solver_never_returns_a_higher_loss_than_its_start():
    # from the source itself SPL's potential still falls while SPL rises a little when the local
    # intensity is left free: the start wins
    class Free(SPLLoss):
        keeps_local_intensity = False

    s, _ = photo_and_edit(24, 32)
    r = optimize_image(s, s, [Free()], iterations=200)
    assert r.loss_after == r.loss_before and torch.equal(r.image, s)
    held = optimize_image(s, s, [SPLLoss()], iterations=200)  # held, it barely moves
    assert held.loss_after <= held.loss_before and (held.image - s).abs().max() < 0.05


def psnr(a: torch.Tensor, b: torch.Tensor, border: int = 6) -> float:
    """PSNR in dB of two [-1, 1] images on the interior."""
    d = ((a - b) / 2)[..., border:-border, border:-border]
    return -10 * float(torch.log10(d.double().pow(2).mean()))


@pytest.mark.parametrize(("h", "w"), [(48, 64), (160, 256)])
def test_fast_ends_closer_to_the_ideal_than_the_reference(h, w):
    # the edit without its blur is the ideal: the photo's structure in the edit's colors
    s, e = photo_and_edit(h, w)
    ideal, _ = photo_and_edit(h, w, blur=False)
    ref = optimize_image(s, e, [SPLLoss()], iterations=30, solver="reference")
    fast = optimize_image(s, e, [SPLLoss()], iterations=30, solver="fast")
    assert fast.loss_before == pytest.approx(ref.loss_before)
    assert psnr(fast.image, ideal) > psnr(e, ideal) + 2.0
    assert psnr(fast.image, ideal) >= psnr(ref.image, ideal)
    assert fast.iterations <= 30


def test_fast_step_does_not_shrink_with_the_pixel_count():
    # the same photo at two sizes (16x the pixels): five steps gain 5.0 and 10.1 dB to the ideal
    # (the reference SGD's step shrinks with the pixel count: its loss falls to 84 % and 17 %)
    gains = []
    for h, w in ((40, 60), (160, 240)):
        s, e = photo_and_edit(h, w)
        ideal, _ = photo_and_edit(h, w, blur=False)
        r = optimize_image(s, e, [SPLLoss()], iterations=5)
        gains.append(psnr(r.image, ideal) - psnr(e, ideal))
        assert r.loss_after < 0.1 * r.loss_before
    assert min(gains) > 2.0 and gains[1] > 0.5 * gains[0], gains


def test_a_color_loss_still_moves_the_chroma_while_the_intensity_is_held():
    # CPL asks for the source's chroma only: the hold on the local intensity never fights it
    s, e = photo_and_edit(48, 64)
    r = optimize_image(s, e, [SPLLoss(), CPLLoss()], iterations=30)
    cpl = CPLLoss()
    assert float(cpl(s, r.image)) < 0.2 * float(cpl(s, e))
    assert (local_mean(r.image, 8) - local_mean(e, 8)).abs().max() < 0.05


def test_result_is_float32_in_range_and_inputs_are_untouched():
    s, e = photo_and_edit(24, 32)
    e64 = (e * 1.5).double()  # outside [-1, 1] and float64
    before = e64.clone()
    for solver in ("fast", "reference"):
        r = optimize_image(s, e64, [MSELoss(weight=1e6)], iterations=5, solver=solver)
        assert isinstance(r, OptimizeResult) and r.image.dtype == torch.float32
        assert r.image.shape == e.shape
        assert r.image.min() >= -1 and r.image.max() <= 1
        assert r.seconds >= 0
    assert torch.equal(e64, before)


def test_clamping_keeps_pixels_in_range_when_the_target_lies_outside():
    s, e = photo_and_edit(16, 16)
    target = torch.full_like(s, 3.0)  # an MSE term pulls every pixel beyond 1
    for solver in ("fast", "reference"):
        r = optimize_image(target, e, [MSELoss()], iterations=20, solver=solver)
        assert r.image.max() <= 1 and r.image.min() >= -1
        assert torch.allclose(r.image, torch.ones_like(r.image), atol=1e-3)


class _NaNGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sum() * 0

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        g = torch.zeros_like(x)
        g[..., :4, :4] = float("nan")
        return g * grad_out


class NaNTerm(LossTerm):
    """MSE outside the top-left corner, plus a zero-valued part whose gradient is NaN in the corner."""

    name = "nan-test"

    def value(self, source01, edited01):
        outside = torch.ones_like(edited01)
        outside[..., :4, :4] = 0
        return _NaNGrad.apply(edited01) + ((edited01 - source01) * outside).square().mean()


@pytest.mark.parametrize("solver", ["fast", "reference"])
def test_nan_gradients_are_zeroed(solver):
    s, e = photo_and_edit(16, 16)
    r = optimize_image(s, e, [NaNTerm(weight=100.0)], iterations=10, solver=solver)
    assert torch.isfinite(r.image).all()
    assert r.loss_after < 0.5 * r.loss_before
    # the corner's only gradient was NaN, set to 0: it keeps its start values
    assert torch.equal(r.image[..., :4, :4], e[..., :4, :4])


@pytest.mark.parametrize("solver", ["fast", "reference"])
def test_progress_is_called_per_iteration_and_ends_at_the_total(solver):
    s, e = photo_and_edit(24, 32)
    calls = []
    r = optimize_image(s, e, [SPLLoss()], iterations=12, solver=solver,
                       progress=lambda i, total, loss: calls.append((i, total, loss)))
    assert len(calls) >= min(r.iterations, 12)
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert calls[-1][0] == 12 and all(c[1] == 12 for c in calls)
    assert all(isinstance(c[2], float) for c in calls)
    assert [c[0] for c in calls] == list(range(1, 13))  # each unit once: the editor's progress adds them up


def test_fast_handles_terms_without_curvature_and_stops_when_converged():
    s, e = photo_and_edit(24, 32)
    r = optimize_image(s, e, [L1Loss()], iterations=200)
    assert r.loss_after < 0.2 * r.loss_before
    converged = optimize_image(s, s, [SPLLoss()], iterations=200)
    assert converged.iterations < 200  # nothing to do: it stops early
    assert converged.loss_after <= converged.loss_before


def test_no_terms_returns_the_start_image():
    s, e = photo_and_edit(8, 8)
    r = optimize_image(s, e, [], iterations=5)
    assert torch.equal(r.image, e) and r.loss_before == r.loss_after == 0.0


def test_unknown_solver_is_refused():
    s, e = photo_and_edit(8, 8)
    with pytest.raises(ValueError, match="solver"):
        optimize_image(s, e, [SPLLoss()], solver="adam")


def test_masked_terms_leave_pixels_outside_every_mask_unchanged():
    s, e = photo_and_edit(32, 32)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    for solver in ("fast", "reference"):
        r = optimize_image(s, e, [SPLLoss(mask=mask), CPLLoss(mask=mask)], iterations=10, solver=solver)
        outside = (mask == 0).expand_as(e)
        assert torch.equal(r.image[outside], e[outside])
        assert not torch.equal(r.image[~outside], e[~outside])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; none is visible to torch here")
def test_fast_solver_gives_the_same_result_on_cuda_as_on_the_cpu():
    s, e = photo_and_edit(160, 256)
    terms = [SPLLoss(), CPLLoss()]
    cpu = optimize_image(s, e, terms, iterations=20)
    gpu = optimize_image(s.cuda(), e.cuda(), [SPLLoss(), CPLLoss()], iterations=20)
    assert gpu.image.device.type == "cuda"
    assert gpu.loss_after == pytest.approx(cpu.loss_after, rel=1e-3)
    assert (gpu.image.cpu() - cpu.image).abs().max() < 1e-2


@pytest.mark.parametrize("make", [L1Loss, ValueOnlyLoss])
def test_a_start_that_is_already_optimal_stays_unchanged_without_curvature(make):
    s, _ = photo_and_edit(12, 16)
    r = optimize_image(s, s, [make()], iterations=3)  # zero gradient: the probe finds no curvature
    assert torch.equal(r.image, s) and r.loss_after == r.loss_before


def test_an_edit_that_already_has_the_sources_structure_is_left_as_it_is(monkeypatch):
    # an affine change of the source's intensity scores below twice the source's own SPL: there is
    # no structure left to restore, and descending further only chases eps's bias (issue 26)
    import spl_sdk.optimizer as optimizer

    s, _ = photo_and_edit(48, 64)
    e = (0.8 * (s + 1) / 2 + 0.1) * 2 - 1
    r = optimize_image(s, e, [SPLLoss()])
    assert torch.equal(r.image, e) and r.iterations == 1
    monkeypatch.setattr(optimizer, "OWN_LOSS_FLOOR", 0.0)  # what the floor prevents
    assert not torch.equal(optimize_image(s, e, [SPLLoss()]).image, e)


def test_the_old_module_name_still_imports_with_a_deprecation_warning():
    import importlib
    import sys

    sys.modules.pop("spl_sdk.optimiser", None)
    with pytest.warns(DeprecationWarning, match="spl_sdk.optimizer"):
        old = importlib.import_module("spl_sdk.optimiser")
    assert old.optimise_image is optimize_image and old.OptimiseResult is OptimizeResult


def test_the_old_spelling_of_canceled_is_the_same_class():
    from spl_sdk.errors import Canceled, Cancelled

    assert Cancelled is Canceled
