"""Image-space optimiser shared by loss injection, post-processing and ``spl refine`` (DESIGN.md section 3).

Two solvers over the edited pixels (float32, kept in [-1, 1]):

- ``reference``: the paper's settings, SGD with learning rate 1 and momentum 0.9
  on the autograd gradient of the summed terms, NaN gradients set to 0, the
  image clamped to [-1, 1] after every step.
- ``fast`` (default): projected Nesterov descent on the terms' closed-form
  gradients, preconditioned by their per-pixel curvature, so the step does not
  shrink as the image grows (the losses are means over pixels); no autograd
  graph is kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from spl_sdk.components import LossTerm
from spl_sdk.finite import check_finite_loss

Progress = Callable[[int, int, float], object]
SOLVERS = ("fast", "reference")


@dataclass
class OptimiseResult:
    """Outcome of :func:`optimise_image`; ``iterations`` counts the gradient evaluations used."""

    image: torch.Tensor
    loss_before: float
    loss_after: float
    seconds: float
    iterations: int


def total_value_and_grad(terms: Sequence[LossTerm], source: torch.Tensor, edited: torch.Tensor
                         ) -> tuple[float, torch.Tensor, torch.Tensor | None]:
    """Summed weighted loss, its gradient in ``edited`` (NaN entries set to 0) and a diagonal preconditioner.

    ``LossTerm.value_grad_and_curvature`` may return a per-pixel diagonal
    curvature bound as a third item (broadcastable to the
    image, or None); the sum over the terms that give one is returned, with a
    uniform part added for terms that do not. None when no term gives one.
    """
    total = 0.0
    grad: torch.Tensor | None = None
    curv: torch.Tensor | None = None
    unknown = False
    for term in terms:
        value, g, c = term.value_grad_and_curvature(source, edited)
        total += float(value)
        grad = g.expand_as(edited).clone() if grad is None else grad.add_(g)
        del g
        if c is None:
            unknown = True
        else:
            curv = c.clone() if curv is None else curv + c
    if grad is None:
        grad = torch.zeros_like(edited)
    grad.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
    if curv is not None:
        curv.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
        mean = float(curv.mean())
        # terms without a curvature get a uniform share; pixels no term sees get a floor
        curv.add_(mean) if unknown else curv.clamp_(min=1e-6 * mean + 1e-30)
    return total, grad, curv


def _total(terms: Sequence[LossTerm], source: torch.Tensor, edited: torch.Tensor) -> float:
    with torch.no_grad():
        return float(sum(float(term(source, edited)) for term in terms))


def _reference(source: torch.Tensor, x: torch.Tensor, terms: Sequence[LossTerm], iterations: int,
               progress: Progress | None) -> tuple[int, float | None]:
    """SGD(lr=1, momentum=0.9) on autograd gradients, clamped after each step; updates ``x`` in place."""
    x.requires_grad_(True)
    opt = torch.optim.SGD([x], lr=1.0, momentum=0.9)
    for i in range(iterations):
        opt.zero_grad(set_to_none=True)
        loss = sum(term(source, x) for term in terms)
        loss.backward()
        x.grad[torch.isnan(x.grad)] = 0.0
        opt.step()
        with torch.no_grad():
            x.clamp_(-1.0, 1.0)
        if progress is not None:
            progress(i + 1, iterations, float(loss.detach()))
    x.requires_grad_(False)
    return iterations, None


def _probe_curvature(terms: Sequence[LossTerm], source: torch.Tensor, x: torch.Tensor,
                     grad: torch.Tensor) -> torch.Tensor:
    """A scalar curvature along -grad from one extra gradient (secant), for terms that give none."""
    t = 0.01 / max(float(grad.abs().max()), 1e-30)
    s = torch.sub(x, grad, alpha=t).clamp_(-1.0, 1.0).sub_(x)
    _, g2, _ = total_value_and_grad(terms, source, x + s)
    ss = float((s * s).sum())
    c = float(((g2 - grad) * s).sum()) / ss if ss > 0 else 0.0
    return torch.tensor(c if c > 0 else float(grad.abs().max()) / 0.1, dtype=x.dtype, device=x.device)


def _fast(source: torch.Tensor, x: torch.Tensor, terms: Sequence[LossTerm], iterations: int,
          progress: Progress | None, beta: float = 0.95, window: int = 25,
          rtol: float = 1e-3) -> tuple[int, float | None]:
    """Preconditioned projected Nesterov descent; updates ``x`` in place.

    Step ``x <- clamp(y - D^-1 g(y))`` from ``y = x + beta (x - x_prev)``, with D
    the terms' diagonal curvature. For SPL, D is exact for fixed coefficients,
    so the unit step is the guided-filter-like minimiser of each pixel, stable
    for any momentum and independent of the pixel count. Momentum is dropped
    when the step turns against the gradient (adaptive restart, O'Donoghue and
    Candes 2015); if the loss doubles the step is halved and the best image
    restored. Stops after ``iterations`` gradient evaluations, or
    once the best loss fell by less than ``rtol`` of itself over ``window``
    evaluations. Returns the evaluations used and the final loss if known.
    """
    v = torch.zeros_like(x)
    best_x = x.clone()
    bests: list[float] = []
    step = 1.0
    fixed_curv: torch.Tensor | None = None
    evals = 0
    while evals < iterations:
        y = torch.add(x, v, alpha=beta).clamp_(-1.0, 1.0)
        f, g, curv = total_value_and_grad(terms, source, y)
        evals += 1
        if curv is None:
            if fixed_curv is None:
                fixed_curv = _probe_curvature(terms, source, y, g)
                evals += 1  # the probe's gradient counts against the budget
            curv = fixed_curv
        if progress is not None:
            progress(evals, iterations, f)
        if not bests or f < bests[-1]:
            best_x.copy_(y)
        bests.append(min(f, bests[-1]) if bests else f)
        if f > 2.0 * bests[-1] + 1e-12:
            # diverging: the curvature is underestimated; halve the step from the best image
            step *= 0.5
            x.copy_(best_x)
            v.zero_()
            continue
        y.addcdiv_(g, curv, value=-step).clamp_(-1.0, 1.0)
        del curv
        torch.sub(y, x, out=v)
        if float(torch.vdot(g.reshape(-1), v.reshape(-1))) > 0:  # the move since x_prev goes uphill at y
            v.zero_()
        del g
        x.copy_(y)
        del y
        if len(bests) > window and bests[-window - 1] - bests[-1] <= rtol * abs(bests[-1]):
            break
    # the last step was never evaluated: keep it if it beats the best image seen
    f_last = _total(terms, source, x)
    best_f = bests[-1] if bests else float("inf")
    if progress is not None and evals < iterations:
        progress(iterations, iterations, min(f_last, best_f))
    if f_last <= best_f:
        return evals, f_last
    x.copy_(best_x)
    return evals, None


def optimise_image(source: torch.Tensor, start: torch.Tensor, terms: Sequence[LossTerm], *,
                   iterations: int = 100, solver: str = "fast",
                   progress: Progress | None = None) -> OptimiseResult:
    """Optimise the pixels of ``start`` (B, 3, H, W) in [-1, 1] to lower the summed loss terms against ``source``.

    ``progress(i, total, loss)`` is called after each gradient evaluation (and
    once with ``i == total`` when the fast solver stops early).
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, not {solver!r}")
    t0 = time.perf_counter()
    source = source.detach().to(torch.float32).contiguous()
    x = start.detach().to(torch.float32).clone(memory_format=torch.contiguous_format).clamp_(-1.0, 1.0)
    if not terms:
        loss = 0.0
        return OptimiseResult(x, loss, loss, time.perf_counter() - t0, 0)
    before = _total(terms, source, x)
    run = _reference if solver == "reference" else _fast
    used, after = run(source, x, list(terms), iterations, progress)
    if after is None:
        after = _total(terms, source, x)
    check_finite_loss(before, after)  # an overflowed loss would leave the image silently unchanged
    return OptimiseResult(x, before, after, time.perf_counter() - t0, used)
