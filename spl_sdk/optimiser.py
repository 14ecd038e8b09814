"""Image-space optimiser shared by loss injection, post-processing and ``spl refine`` (DESIGN.md section 3).

Two solvers over the edited pixels (float32, kept in [-1, 1]):

- ``reference``: the paper's settings, SGD with learning rate 1 and momentum 0.9
  on the autograd gradient of the summed terms, NaN gradients set to 0, the
  image clamped to [-1, 1] after every step.
- ``fast`` (default): projected gradient with Barzilai-Borwein steps and a
  non-monotone line search (spectral projected gradient, Birgin, Martinez and
  Raydan 2000) on the terms' closed-form gradients. The BB step is measured
  from the last two gradients, so it does not shrink as the image grows (the
  losses are means over pixels), and no autograd graph is kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from spl_sdk.components import LossTerm

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


def total_value_and_grad(terms: Sequence[LossTerm], source: torch.Tensor,
                         edited: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Summed weighted loss and its gradient in ``edited``; NaN gradient entries set to 0."""
    total = 0.0
    grad = torch.zeros_like(edited)
    for term in terms:
        value, g = term.value_and_grad(source, edited)
        total += float(value)
        grad += g
        del g
    return total, grad.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)


def _total(terms: Sequence[LossTerm], source: torch.Tensor, edited: torch.Tensor) -> float:
    with torch.no_grad():
        return float(sum(float(term(source, edited)) for term in terms))


def _reference(source: torch.Tensor, x: torch.Tensor, terms: Sequence[LossTerm], iterations: int,
               progress: Progress | None) -> int:
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
            progress(i + 1, iterations, float(loss))
    x.requires_grad_(False)
    return iterations


def _fast(source: torch.Tensor, x: torch.Tensor, terms: Sequence[LossTerm], iterations: int,
          progress: Progress | None, memory: int = 10, gamma: float = 1e-4,
          rtol: float = 1e-5) -> int:
    """Spectral projected gradient on closed-form gradients; updates ``x`` in place.

    Stops after ``iterations`` gradient evaluations, or earlier once the best
    loss of the last ``memory`` evaluations improved by less than ``rtol``.
    """
    f, g = total_value_and_grad(terms, source, x)
    evals, history, best = 1, [f], [f]
    if progress is not None:
        progress(evals, iterations, f)
    # first step: move the pixel with the largest projected gradient by at most 0.1
    d = (x - g).clamp_(-1.0, 1.0).sub_(x)
    alpha = 0.1 / max(float(d.abs().max()), 1e-12)
    while evals < iterations:
        d = (x - alpha * g).clamp_(-1.0, 1.0).sub_(x)  # projected direction
        gd = float((g * d).sum())
        if gd >= 0:  # stationary in the feasible box
            break
        f_ref, lam = max(history[-memory:]), 1.0
        while True:
            x_new = x + lam * d
            f_new, g_new = total_value_and_grad(terms, source, x_new)
            evals += 1
            if progress is not None:
                progress(evals, iterations, f_new)
            if f_new <= f_ref + gamma * lam * gd or evals >= iterations:
                break
            # safeguarded quadratic interpolation of the step along d
            curv = f_new - f - lam * gd
            trial = -0.5 * lam * lam * gd / curv if curv > 0 else 0.5 * lam
            lam = trial if 0.1 * lam <= trial <= 0.5 * lam else 0.5 * lam
        accepted = f_new <= f_ref + gamma * lam * gd
        if not accepted:
            break
        # Barzilai-Borwein step from s = lam d and y = g_new - g
        sty = lam * (float((d * g_new).sum()) - gd)
        sts = lam * lam * float((d * d).sum())
        alpha = min(max(sts / sty, 1e-10), 1e10) if sty > 0 else 1e10
        x.copy_(x_new)
        g = g_new
        f = f_new
        history.append(f)
        best.append(min(best[-1], f))
        del x_new, g_new, d
        if len(best) > memory and best[-memory - 1] - best[-1] <= rtol * abs(best[-1]):
            break
    if progress is not None and evals < iterations:
        progress(iterations, iterations, f)
    return evals


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
    source = source.detach().to(torch.float32)
    x = start.detach().to(torch.float32).clone().clamp_(-1.0, 1.0)
    if not terms:
        loss = 0.0
        return OptimiseResult(x, loss, loss, time.perf_counter() - t0, 0)
    before = _total(terms, source, x)
    run = _reference if solver == "reference" else _fast
    used = run(source, x, list(terms), iterations, progress)
    after = _total(terms, source, x)
    return OptimiseResult(x, before, after, time.perf_counter() - t0, used)
