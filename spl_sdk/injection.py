"""Loss injection shared by every door: the image-space refinement of a clean estimate, and the flow step.

Two pieces (docs/method.md section 2 "Loss injection", docs/instruct.md):

- :func:`make_injector` turns a clean latent estimate into a refined one: decode,
  optimize the image against the source's VAE round trip with the loss terms, encode.
- :func:`continue_from_refined` puts a refined estimate back into a flow sampler. For the
  path z_t = (1 - t) x0 + t n with velocity v, the clean estimate at time t is
  x0 = z_t - t v. After the Euler step z' = z_t + (t' - t) v it is also x0 = z' - t' v,
  so the step can be taken first and the refinement applied afterwards: with the
  shift d = x0_refined - x0, the trajectory continues from z' + d, which is exactly the
  Euler step from z_t + d with v held. This form needs only z' and v, which is what a
  diffusers ``callback_on_step_end`` sees (v itself comes from two consecutive latents).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from spl_sdk.components.loss import LossTerm
from spl_sdk.lazy import torch
from spl_sdk.optimizer import optimize_image

Injector = Callable[["torch.Tensor"], "torch.Tensor"]


def make_injector(backbone: Any, terms: Sequence[LossTerm], round_trip: torch.Tensor, *,
                  iterations: int = 100, solver: str = "fast",
                  phase: Callable[[str], AbstractContextManager[Any]] | None = None,
                  check: Callable[[torch.Tensor], None] | None = None,
                  generator: torch.Generator | None = None) -> Injector:
    """x0 -> encode(optimize(decode(x0)) against ``round_trip``): loss injection on a clean latent.

    ``phase(name)`` (optional) times the "vae" and "optimization" parts; ``check(decoded)`` runs
    once before the first optimization; ``generator`` makes the re-encode sample the posterior.
    """
    timed = phase or (lambda name: nullcontext())
    sampling = {} if generator is None else {"generator": generator}
    checked: list[bool] = []

    def inject(x0_hat: torch.Tensor) -> torch.Tensor:
        with timed("vae"):
            decoded = backbone.decode_latents(x0_hat).float()
        if check is not None and not checked:  # a faulty loss plug-in is named before the optimizer runs it
            check(decoded)
            checked.append(True)
        with timed("optimization"):
            refined = optimize_image(round_trip.float(), decoded, terms, iterations=iterations,
                                     solver=solver).image
        with timed("vae"):
            return backbone.encode_image(refined, **sampling).float()

    return inject


def clean_estimate(z_t: torch.Tensor, v: torch.Tensor, t: float) -> torch.Tensor:
    """x0 = z_t - t v for the path z_t = (1 - t) x0 + t n."""
    return z_t - t * v


def continue_from_refined(z_next: torch.Tensor, v: torch.Tensor, t_next: float,
                          inject: Injector) -> tuple[torch.Tensor, torch.Tensor]:
    """(z_next + d, refined x0) with d = inject(x0) - x0 and x0 = z_next - t_next v (see module doc)."""
    x0 = clean_estimate(z_next.float(), v.float(), t_next)
    refined = inject(x0).float()
    return z_next.float() + (refined - x0), refined


def injection_steps(steps: int, opt_start: float) -> list[int]:
    """Steps ``i`` (0-based, of ``steps``) with ``i / steps >= opt_start``; none when ``opt_start`` is 1."""
    return [i for i in range(steps) if opt_start < 1.0 and i / steps >= opt_start]
