"""The 0.1 releases' default solver (coarse to fine over an image pyramid), kept so their results replay.

Results written by spl-sdk 0.1 record ``solver: fast``, which then meant this
solver; :func:`spl_sdk.config.config_of_result` reads that as ``pyramid``, so
``--config OLD_RESULT.png`` gives the old pixels. New runs use the current
``fast`` solver, which ends closer to a known ideal (docs/benchmarks/refine.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from spl_sdk.components import LossTerm
from spl_sdk.descent import Progress, descend
from spl_sdk.lazy import functional as F
from spl_sdk.lazy import torch

COARSEST_SIDE = 32  # the pyramid halves the image while its short side stays at least this
# a coarse level stops once its last few evaluations gained less than this fraction of what it gained
COARSE_RTOL, COARSE_WINDOW = 0.01, 5
# the finest level stops once 25 evaluations lowered the objective by less than 2 % of the loss
FINEST_VTOL, FINEST_WINDOW = 0.02, 25


def _down(image: torch.Tensor) -> torch.Tensor:
    """Half size (rounded up) by area averaging."""
    h, w = image.shape[-2:]
    return F.interpolate(image, size=((h + 1) // 2, (w + 1) // 2), mode="area")


def solve(source: torch.Tensor, x: torch.Tensor, terms: Sequence[LossTerm], iterations: int,
          progress: Progress | None) -> tuple[torch.Tensor, int, float]:
    """Coarse to fine, each level's correction carried up (bilinear): result, evaluations, loss."""
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
            # at full size the start itself becomes the first iterate (one image-sized buffer fewer)
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
