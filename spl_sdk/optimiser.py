"""Image-space optimiser shared by loss injection, post-processing and ``spl refine`` (docs/method.md section 3).

Two solvers over the edited pixels (float32):

- ``reference``: the paper's optimiser exactly: SGD with learning rate 1 and
  momentum 0.9 on the autograd gradient of the summed terms, NaN gradient
  entries set to 0, the image clamped to [-1, 1] once, after the last step.
- ``fast`` (default): coarse to fine over an image pyramid (:mod:`spl_sdk.descent`
  at each level), so that smooth areas, whose error is of low frequency, converge
  as fast as detailed ones at any size; the image stays in [-1, 1] at every step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from spl_sdk.components import LossTerm
from spl_sdk.descent import Progress, descend, loss_value, total_value_and_grad
from spl_sdk.finite import check_finite_loss
from spl_sdk.lazy import functional as F
from spl_sdk.lazy import torch
from spl_sdk.memory import keep_freed_memory

__all__ = ["SOLVERS", "OptimiseResult", "optimise_image", "total_value_and_grad"]

SOLVERS = ("fast", "reference")
COARSEST_SIDE = 32  # the pyramid halves the image while its short side stays at least this
# a coarse level stops once its last few evaluations gained less than this fraction of what it gained
COARSE_RTOL, COARSE_WINDOW = 0.01, 5
# The finest level's result is the output: it stops once 25 evaluations lowered the objective by
# less than 2 % of the loss. What is left then moves the image's low frequencies, which barely
# changes SPL (on smooth photos it rises while the objective falls). 2 % was chosen on
# scikit-image's sample photos at 512 px (docs/benchmarks/refine.md).
FINEST_VTOL, FINEST_WINDOW = 0.02, 25


@dataclass
class OptimiseResult:
    """Outcome of :func:`optimise_image`; ``iterations`` counts full-resolution gradient evaluations."""

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
    """The paper's optimiser exactly: SGD(lr=1, momentum=0.9) on autograd gradients, NaN entries of
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


def _down(image: torch.Tensor) -> torch.Tensor:
    """Half size (rounded up) by area averaging."""
    h, w = image.shape[-2:]
    return F.interpolate(image, size=((h + 1) // 2, (w + 1) // 2), mode="area")


def _fast(source: torch.Tensor, x: torch.Tensor, terms: Sequence[LossTerm], iterations: int,
          progress: Progress | None) -> tuple[torch.Tensor, int, float]:
    """Coarse to fine: solve on a pyramid, carrying each level's correction up (bilinear) to the next.

    The terms are local, so iterations at one resolution move errors of a few
    windows' width: the low-frequency error of smooth areas needs (size / radius)^2
    of them at full resolution and a handful once the image is small. Each level
    gets up to ``iterations`` evaluations and stops when it stalls; a level costs
    its share of the pixels, so the coarse levels together cost about a third of
    the finest one per evaluation.
    """
    sources, starts = [source], [x]
    while min(sources[-1].shape[-2:]) >= 2 * COARSEST_SIDE:
        sources.append(_down(sources[-1]))
        starts.append(_down(starts[-1]))
    full = source.shape[-2] * source.shape[-1]
    shares = [s.shape[-2] * s.shape[-1] / full for s in sources]
    done = 0.0  # full-resolution evaluations so far
    planned = iterations * sum(shares)
    current = starts[-1].clone()
    reported = 0

    def advance(to: int, loss: float) -> None:
        """Report each whole unit once, in order, up to ``to`` (the last one only at the end)."""
        nonlocal reported
        while progress is not None and reported < min(to, iterations):
            reported += 1
            progress(reported, iterations, loss)

    for level in range(len(sources) - 1, -1, -1):
        if level < len(sources) - 1:
            correction = F.interpolate(current.sub_(starts[level + 1]), size=starts[level].shape[-2:],
                                       mode="bilinear", align_corners=False)
            # at full size the start itself becomes the first iterate (one image-sized buffer fewer);
            # a coarser start is kept: the next level's correction is measured from it
            current = (starts[level].add_(correction) if level == 0 else correction.add_(starts[level]))
            current.clamp_(-1.0, 1.0)
            del correction
            starts[level + 1] = sources[level + 1] = None  # type: ignore[call-overload]
        share, base = shares[level], done

        def report(i: int, _total_i: int, loss: float, share: float = share, base: float = base) -> None:
            advance(min(iterations - 1, int(iterations * (base + i * share) / planned)), loss)

        finest = level == 0
        rule = dict(rtol=0.0, vtol=FINEST_VTOL, window=FINEST_WINDOW) if finest else \
            dict(rtol=COARSE_RTOL, vtol=0.0, window=COARSE_WINDOW)
        current, used, loss = descend(sources[level], current, terms, iterations, report, **rule)
        done += used * share
    advance(iterations, loss)
    return current, math.ceil(done - 1e-9), loss


def optimise_image(source: torch.Tensor, start: torch.Tensor, terms: Sequence[LossTerm], *,
                   iterations: int = 100, solver: str = "fast",
                   progress: Progress | None = None) -> OptimiseResult:
    """Optimise the pixels of ``start`` (B, 3, H, W) in [-1, 1] to lower the summed loss terms against ``source``.

    ``iterations`` caps the gradient evaluations (per pyramid level for the fast
    solver, which stops earlier once the loss stalls). ``progress(i, total, loss)``
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
        return OptimiseResult(x, 0.0, 0.0, time.perf_counter() - t0, 0)
    if solver == "fast":
        x.clamp_(-1.0, 1.0)  # the fast solver keeps the image in range throughout
    before = (_total if solver == "reference" else loss_value)(terms, source, x)
    if solver == "reference":
        x, used = _reference(source, x, list(terms), iterations, progress)
        after = _total(terms, source, x)
    else:
        x, used, after = _fast(source, x, list(terms), iterations, progress)
        if after > before:
            # it lowered the objective its gradient belongs to but not the loss (SPL's potential,
            # docs/method.md section 3): never hand back a worse image than the one given
            x = start.detach().to(torch.float32).clamp(-1.0, 1.0)
            after = before
    check_finite_loss(before, after)  # an overflowed loss would leave the image silently unchanged
    return OptimiseResult(x, before, after, time.perf_counter() - t0, used)
