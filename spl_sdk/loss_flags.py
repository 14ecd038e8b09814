"""The loss shortcuts ``spl edit`` and ``spl refine`` share: one rule, one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from spl_sdk.config import RefineConfig, build_config
from spl_sdk.errors import ConfigError

Cfg = TypeVar("Cfg", bound=RefineConfig)


def resolve_loss_options(cls: type[Cfg], config_file: Path | None, *, mask: Path | None = None,
                         cpl: bool = False, **fields: Any) -> Cfg:
    """Build the run's config from a file and flags, applying the shared loss shortcuts.

    ``--cpl`` means ``--color-loss cpl`` (another ``--color-loss`` with it is refused);
    a mask given while no active loss is set to the masked area restricts every active
    loss to it (both areas become 'masked').
    """
    if cpl:
        if fields.get("color_loss") not in (None, "cpl"):
            raise ConfigError(f"--cpl means --color-loss cpl, but --color-loss {fields['color_loss']} "
                              f"was given too; drop one of them.")
        fields["color_loss"] = "cpl"
    cfg = build_config(cls, config_file, mask_file=mask, **fields)
    masked = any(loss is not None and area == "masked" for loss, area in (
        (cfg.structure_loss, cfg.structure_area), (cfg.color_loss, cfg.color_area)))
    if cfg.mask_file is not None and not masked:
        cfg = cfg.model_copy(update={"structure_area": "masked", "color_area": "masked"})
    return cfg
