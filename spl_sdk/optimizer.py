"""Image-space optimizer shared by loss injection, post-processing and ``spl refine`` (docs/method.md section 3).

Two solvers over the edited pixels (float32):

- ``reference``: the paper's optimizer exactly: SGD with learning rate 1 and
  momentum 0.9 on the autograd gradient of the summed terms, NaN gradient
  entries set to 0, the image clamped to [-1, 1] once, after the last step.
- ``fast`` (default): curvature-preconditioned projected Nesterov descent
  (:mod:`spl_sdk.descent`) at full resolution. When every term leaves an
  image's local mean intensity to the edit (SPL, CPL), each step is projected
  back onto the start's local mean intensity: the solver restores structure,
  the edit keeps its light. It is judged by its distance to a known ideal, not
  by the loss it reaches (docs/benchmarks/refine.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from spl_sdk.components import LossTerm
from spl_sdk.descent import Progress, descend, loss_value, total_value_and_grad
from spl_sdk.finite import check_finite_loss
from spl_sdk.lazy import functional as F
from spl_sdk.lazy import torch
from spl_sdk.memory import keep_freed_memory
from spl_sdk.pyramid import solve as pyramid_solve

__all__ = ["SOLVERS", "OptimizeResult", "keep_local_intensity", "optimize_image", "total_value_and_grad"]

SOLVERS = ("fast", "reference", "pyramid")  # pyramid: the 0.1 releases' fast (spl_sdk.pyramid)
# The start's local mean intensity is held on cells of this many pixels (area mean, bilinear back
# up: a low-pass about as wide as a Gaussian of 4 px standard deviation, at a fraction of its cost).
# The descent may only add what varies faster: the detail a blur, a JPEG or a VAE round trip took
# out. 8 was chosen on scikit-image's sample photos (docs/benchmarks/refine.md).
ANCHOR_CELL = 8
# It stops once 5 evaluations gained less than 1 % of what the descent gained. With the local
# intensity held the loss levels off where the result does; the image with the lowest loss seen is
# returned (the best of the stop rules compared on the tuning photos, docs/benchmarks/refine.md).
STOP_RTOL, STOP_WINDOW = 0.01, 5
# ... or once the loss is at most this many times the source's own (the loss of the source against
# itself): an image with the source's exact structure scores that, an ideal edit (colors changed
# non-linearly) more; below it the descent only chases eps's bias. It binds on near-faithful edits
# of smooth photos (an 8x-upscaled photo lightly blurred starts at 1.6-2.1x its own SPL); 2 was
# chosen on scikit-image's sample photos (docs/benchmarks/refine.md).
OWN_LOSS_FLOOR = 2.0


@dataclass
class OptimizeResult:
    """Outcome of :func:`optimize_image`; ``iterations`` counts full-resolution gradient evaluations."""

    image: torch.Tensor
    loss_before: float
    loss_after: float
    seconds: float
    iterations: int


def _total(terms: Sequence[LossTerm], source: torch.Tensor, edited: torch.Tensor) -> float:
    with torch.no_grad():
        return float(sum(float(term(source, edited)) for term in terms))


def _reference(source: torch.Tensor, x: torch.Tensor, terms: Sequence[LossTerm], iterations: int,
               progress: Progress | None) -> tuple[torch.Tensor, int]:
    """The paper's optimizer exactly: SGD(lr=1, momentum=0.9) on autograd gradients, NaN entries of
    the gradient set to 0, and the image clamped to [-1, 1] once, after the last step (not per step).
    """
    x.requires_grad_(True)
    opt = torch.optim.SGD([x], lr=1.0, momentum=0.9)
    for i in range(iterations):
        opt.zero_grad(set_to_none=True)
        loss = sum(term(source, x) for term in terms)
        loss.backward()
        x.grad[torch.isnan(x.grad)] = 0.0
        opt.step()
        if progress is not None:
            progress(i + 1, iterations, float(loss.detach()))
    x.requires_grad_(False)
    with torch.no_grad():
        x.clamp_(-1.0, 1.0)
    return x, iterations


def _local_mean(plane: torch.Tensor) -> torch.Tensor:
    """Low-pass of a (B, 1, H, W) plane: its mean over ANCHOR_CELL-pixel cells, bilinear back to full size."""
    h, w = plane.shape[-2:]
    k = ANCHOR_CELL
    cells = F.avg_pool2d(plane, k, k, ceil_mode=True, count_include_pad=False)
    return F.interpolate(cells, size=(cells.shape[-2] * k, cells.shape[-1] * k), mode="bilinear",
                         align_corners=False)[..., :h, :w]


def keep_local_intensity(start: torch.Tensor) -> Callable[[torch.Tensor], None]:
    """The in-place projection that gives an image back ``start``'s local mean intensity.

    ``y += low(mean_c(start) - mean_c(y))``, added equally to every channel (so
    chroma is left as it is), then clamped to [-1, 1]. Pixels where ``y`` still
    equals ``start`` (no term moved them: outside every mask, NaN gradients) are
    left exactly as they are.
    """
    target = _local_mean(start.mean(1, keepdim=True))

    def project(y: torch.Tensor) -> None:
        moved = (y != start).any(1, keepdim=True)
        shift = target - _local_mean(y.mean(1, keepdim=True))
        y.add_(shift.mul_(moved)).clamp_(-1.0, 1.0)

    return project


def _fast(source: torch.Tensor, x: torch.Tensor, terms: Sequence[LossTerm], iterations: int,
          progress: Progress | None) -> tuple[torch.Tensor, int, float]:
    """Projected Nesterov descent at full resolution, held to the start's local intensity where the terms allow.

    A term that compares structure (SPL: blind to a smooth intensity offset) or
    chroma only (CPL) gives no reason to move the edit's local mean intensity,
    yet a descent left free drifts it (SPL's eps bias flattens and darkens flat
    areas) and the result leaves the edit's own light. Terms that do ask for it
    (MSE, L1, third-party terms by default) get the plain descent.
    """
    held = all(t.keeps_local_intensity for t in terms)
    project = keep_local_intensity(x.clone()) if held else None
    floor = OWN_LOSS_FLOOR * loss_value(terms, source, source) if held else float("-inf")
    reported = 0

    def advance(to: int, _total: int, loss: float) -> None:
        """Report each whole unit once, in order, up to ``to`` (the probe's evaluation may skip one)."""
        nonlocal reported
        while progress is not None and reported < min(to, iterations):
            reported += 1
            progress(reported, iterations, loss)

    x, used, loss = descend(source, x, terms, iterations, advance, rtol=STOP_RTOL, window=STOP_WINDOW,
                            project=project, floor=floor)
    advance(iterations, iterations, loss)  # an early stop finishes the count
    return x, used, loss


def optimize_image(source: torch.Tensor, start: torch.Tensor, terms: Sequence[LossTerm], *,
                   iterations: int = 100, solver: str = "fast",
                   progress: Progress | None = None) -> OptimizeResult:
    """Optimize the pixels of ``start`` (B, 3, H, W) in [-1, 1] to lower the summed loss terms against ``source``.

    ``iterations`` caps the gradient evaluations (the fast solver stops earlier
    once the loss levels off). ``progress(i, total, loss)``
    is called as the work advances, ``i`` rising to ``total`` at the end.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, not {solver!r}")
    t0 = time.perf_counter()
    if start.device.type == "cpu":
        keep_freed_memory()  # a library caller gets the CLI's allocator setting too (4.7x at 12 MP)
    source = source.detach().to(torch.float32).contiguous()
    x = start.detach().to(torch.float32).clone(memory_format=torch.contiguous_format)
    if not terms:
        x.clamp_(-1.0, 1.0)
        return OptimizeResult(x, 0.0, 0.0, time.perf_counter() - t0, 0)
    if solver != "reference":
        x.clamp_(-1.0, 1.0)  # the fast and pyramid solvers keep the image in range throughout
    before = (_total if solver == "reference" else loss_value)(terms, source, x)
    if solver == "reference":
        x, used = _reference(source, x, list(terms), iterations, progress)
        after = _total(terms, source, x)
    else:
        solve = _fast if solver == "fast" else pyramid_solve
        x, used, after = solve(source, x, list(terms), iterations, progress)
        if after > before:
            # it lowered the objective its gradient belongs to but not the loss (SPL's potential,
            # docs/method.md section 3): never hand back a worse image than the one given
            x = start.detach().to(torch.float32).clamp(-1.0, 1.0)
            after = before
    check_finite_loss(before, after)  # an overflowed loss would leave the image silently unchanged
    return OptimizeResult(x, before, after, time.perf_counter() - t0, used)
