"""One level of the fast solver: curvature-preconditioned projected Nesterov descent (docs/method.md section 3)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from spl_sdk.components import LossTerm
from spl_sdk.lazy import torch

Progress = Callable[[int, int, float], object]


class Evaluation(NamedTuple):
    """The summed terms at one image (see :func:`total_value_and_grad`)."""

    value: float  # the summed weighted loss, as reported
    objective: float  # the function whose gradient ``grad`` is (potentials where terms give one)
    grad: torch.Tensor
    curvature: torch.Tensor | None


def _compact(t: torch.Tensor) -> torch.Tensor:
    """Undo a broadcast along the channel axis (a gradient the same in every channel), else ``t``."""
    return t[:, :1] if t.dim() == 4 and t.shape[1] > 1 and t.stride(1) == 0 else t


def _accumulate(total: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``total + t`` into whichever of the two (both owned by the caller) has the broadcast shape."""
    shape = torch.broadcast_shapes(total.shape, t.shape)
    return total.add_(t) if total.shape == shape else t.add_(total) if t.shape == shape else total + t


def total_value_and_grad(terms: Sequence[LossTerm], source: torch.Tensor, edited: torch.Tensor
                         ) -> Evaluation:
    """Summed weighted loss and objective, the gradient in ``edited`` (NaN entries set to 0) and a diagonal preconditioner.

    The gradient and the curvature broadcast to ``edited`` (a gradient equal in
    every channel, like SPL's, stays one channel). The curvature sums the terms'
    own, with a uniform part added for terms that give none; None when no term
    gives one.
    """
    total = objective = 0.0
    grad: torch.Tensor | None = None
    curv: torch.Tensor | None = None
    unknown = False
    for term in terms:
        found = term.value_grad_and_curvature(source, edited)
        total += float(found.value)
        objective += float(found.objective)
        g, c = found.grad, found.curvature
        del found
        g = torch.nan_to_num(_compact(g), nan=0.0, posinf=0.0, neginf=0.0)
        grad = g if grad is None else _accumulate(grad, g)
        del g
        if c is None:
            unknown = True
        else:
            c = torch.nan_to_num(_compact(c), nan=0.0, posinf=0.0, neginf=0.0)
            curv = c if curv is None else _accumulate(curv, c)
    if grad is None:
        grad = torch.zeros_like(edited[:, :1])
    if curv is not None:
        mean = float(curv.mean())
        # terms without a curvature get a uniform share; pixels no term sees get a floor
        curv = curv + mean if unknown else curv.clamp(min=1e-6 * mean + 1e-30)
    return Evaluation(total, objective, grad, curv)


def _probe_curvature(terms: Sequence[LossTerm], source: torch.Tensor, x: torch.Tensor,
                     grad: torch.Tensor) -> torch.Tensor:
    """A scalar curvature along -grad from one extra gradient (secant), for terms that give none."""
    t = 0.01 / max(float(grad.abs().max()), 1e-30)
    s = torch.sub(x, grad, alpha=t).clamp_(-1.0, 1.0).sub_(x)
    g2 = total_value_and_grad(terms, source, x + s).grad
    ss = float((s * s).sum())
    c = float(((g2 - grad) * s).sum()) / ss if ss > 0 else 0.0
    # (a zero gradient gives no curvature: any positive value then leaves the image as it is)
    return torch.tensor(c if c > 0 else max(float(grad.abs().max()) / 0.1, 1e-30), dtype=x.dtype,
                        device=x.device)


def _dot(d: torch.Tensor, v: torch.Tensor) -> float:
    """<d, v> with ``d`` broadcast over ``v``, summing ``v``'s channels first when ``d`` has one."""
    if d.dim() == 4 and d.shape[1] == 1 and v.shape[1] > 1:
        v = v.sum(1, keepdim=True)
    if d.shape != v.shape:
        return float((d * v).sum())
    return float(torch.vdot(d.reshape(-1), v.reshape(-1)))


def descend(source: torch.Tensor, x: torch.Tensor, terms: Sequence[LossTerm], iterations: int,
            progress: Progress | None = None, beta: float = 0.95, window: int = 5,
            rtol: float = 0.01, vtol: float = 0.0,
            project: Callable[[torch.Tensor], object] | None = None,
            floor: float = float("-inf")) -> tuple[torch.Tensor, int, float]:
    """Preconditioned projected Nesterov descent from ``x`` (which it may overwrite): result, evaluations, loss.

    Step ``x <- clamp(y - D^-1 g(y))`` from ``y = x + beta (x - x_prev)``, with D
    the terms' diagonal curvature. For SPL, D is exact for fixed coefficients,
    so the unit step is the guided-filter-like minimizer of each pixel, stable
    for any momentum and independent of the pixel count. Momentum is dropped
    when the step turns against the gradient (adaptive restart, O'Donoghue and
    Candes 2015); if the objective doubles the step is halved and the best image
    restored. Stopping and backtracking watch the objective the gradient belongs
    to (:class:`Evaluation`), which may differ from the reported loss; the image
    returned is the one with the lowest loss seen. Stops after ``iterations``
    evaluations, or once the last ``window`` of them lowered the objective by
    less than ``rtol`` of what this call has gained plus ``vtol`` of the loss.
    ``project``, if given, is applied in place to every new iterate after the
    clamp (the optimizer's hold on the start's local intensity). It also stops,
    or does not start, once the loss is at most ``floor``.
    """
    v = torch.zeros_like(x)
    y = torch.empty_like(x)
    best_x = x.clone()
    bests: list[float] = []  # the lowest objective so far, per evaluation
    best_value = float("nan")  # the lowest loss so far, that of best_x
    step = 1.0
    fixed_curv: torch.Tensor | None = None
    evals = 0
    floored = False
    while evals < iterations:
        torch.add(x, v, alpha=beta, out=y).clamp_(-1.0, 1.0)
        value, f, g, curv = total_value_and_grad(terms, source, y)
        evals += 1
        if curv is None:
            if fixed_curv is None:
                fixed_curv = _probe_curvature(terms, source, y, g)
                evals += 1  # the probe's gradient counts against the budget
            curv = fixed_curv
        if progress is not None:
            progress(evals, iterations, value)
        if not value >= best_value:  # (also the first: best_value starts as NaN)
            best_x.copy_(y)
            best_value = value
        if best_value <= floor:
            floored = True
            break
        bests.append(min(f, bests[-1]) if bests else f)
        if f > 2.0 * abs(bests[-1]) + 1e-12:
            # diverging: the curvature is underestimated; halve the step from the best image
            step *= 0.5
            x.copy_(best_x)
            v.zero_()
            continue
        d = g.div_(curv) if g.shape == torch.broadcast_shapes(g.shape, curv.shape) else g / curv
        del g, curv
        y.sub_(d, alpha=step).clamp_(-1.0, 1.0)
        if project is not None:
            project(y)
        torch.sub(y, x, out=v)
        if _dot(d, v) > 0:  # the move since x_prev goes uphill at y (in the metric of D)
            v.zero_()
        del d
        x, y = y, x
        gained = bests[0] - bests[-1]
        if len(bests) > window and bests[-window - 1] - bests[-1] <= (
                rtol * gained + vtol * abs(best_value) + 1e-12 * abs(bests[-1])):
            break
    del y, v
    # the last step was never evaluated: keep it if it beats the best image seen
    last_value, _ = measure(terms, source, x)
    if floored and last_value <= floor:
        best_value = last_value  # x, before the momentum's extrapolation, is at the floor too: it moved less
    if bests and not last_value <= best_value:  # also when the last step gave NaN
        x.copy_(best_x)
        last_value = best_value
    return x, evals, last_value


def measure(terms: Sequence[LossTerm], source: torch.Tensor, x: torch.Tensor) -> tuple[float, float]:
    """The summed weighted loss and objective (see :class:`Evaluation`) at ``x``."""
    value = objective = 0.0
    with torch.no_grad():
        for term in terms:
            if type(term).closed_form is LossTerm.closed_form:
                found = float(term(source, x))
                value, objective = value + found, objective + found
                continue
            cf = term.value_grad_and_curvature(source, x)
            value += float(cf.value)
            objective += float(cf.objective)
            del cf
    return value, objective


def loss_value(terms: Sequence[LossTerm], source: torch.Tensor, x: torch.Tensor) -> float:
    """The summed weighted loss; from a term's closed form when it has one (leaner on memory: SPL's
    reads the image's channels once and reuses the source's cached statistics)."""
    return measure(terms, source, x)[0]
