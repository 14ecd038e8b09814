"""Build the structure and color loss terms of a run from its configuration (docs/method.md sections 3, 6)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from spl_sdk.components import LossTerm
from spl_sdk.config import RefineConfig
from spl_sdk.errors import ConfigError, EmptyMaskWarning
from spl_sdk.lazy import torch
from spl_sdk.options import options_for
from spl_sdk.plugins import Plugins


def build_terms(plugins: Plugins, config: RefineConfig, mask: torch.Tensor | None) -> list[LossTerm]:
    """The configured structure and color terms; ``mask`` applies to those whose area is 'masked'.

    An unknown loss name raises :class:`~spl_sdk.errors.UnknownComponentError`.
    """
    terms: list[LossTerm] = []
    masked = [role for role, name, area in (("structure", config.structure_loss, config.structure_area),
                                             ("color", config.color_loss, config.color_area))
              if name is not None and area == "masked"]
    if masked and mask is not None:
        warn_if_empty(mask, masked)
    for role, name, weight, area in (
        ("structure", config.structure_loss, config.structure_weight, config.structure_area),
        ("color", config.color_loss, config.color_weight, config.color_area),
    ):
        if name is None:
            continue
        cls = plugins.loss_term(name)
        if area == "masked" and mask is None:
            raise ConfigError(f"{role}_area is 'masked' but no mask was given; pass a mask "
                              f"(--mask FILE) or set {role}_area to 'whole'.")
        terms.append(cls(weight=weight, mask=mask if area == "masked" else None,
                         options=options_for(plugins, "loss", name, config.options)))
    return terms


def warn_if_empty(mask: torch.Tensor, roles: Sequence[str]) -> bool:
    """Warn (EmptyMaskWarning) when ``mask`` selects no pixel, so the masked losses cannot act."""
    if float(mask.detach().float().max()) >= 0.5 / 255:  # at least one pixel above 8-bit black
        return False
    warnings.warn(EmptyMaskWarning(
        f"the mask selects nothing (all black or fully transparent), so the masked "
        f"{' and '.join(roles)} loss{'es' if len(roles) > 1 else ''} will do nothing; white or "
        f"opaque marks the area to keep (invert the mask if it is the wrong way round)."),
        stacklevel=3)
    return True


def check_terms(plugins: Plugins, terms: Sequence[LossTerm], source: torch.Tensor,
                edited: torch.Tensor) -> None:
    """Evaluate each term once so a failing plug-in, or one returning a map, is named in one line."""
    from spl_sdk.checks import scalar

    with torch.no_grad():
        for term in terms:
            plugins.call(term, "__call__", source, edited, check=scalar)

