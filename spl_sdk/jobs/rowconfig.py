"""The one place where a manifest row becomes configuration: its seed, options and mask."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from spl_sdk.config import OLD_KEYS, EditConfig, RefineConfig, describe_validation_error
from spl_sdk.errors import ConfigError
from spl_sdk.jobs.manifest import Row

# fields that choose where the work runs, not what it computes: not part of a row's key
PLACEMENT_FIELDS = ("device", "cpu_offload")


def row_overrides(row: Row, base: EditConfig) -> dict[str, Any]:
    """Config changes a row asks for: its ``options`` object, config-named columns, seed, mask.

    A value that is itself an object and names no config field is a component's options
    (docs/plugins.md, "Options"), e.g. ``{"spl": {"radius": 3}}``: it goes to the config's
    ``options`` field, merged field by field over the run's. A row with a mask and no loss set to the masked area masks every
    active loss, as ``spl edit --mask`` does.
    """
    fields = type(base).model_fields
    # a column may use an old name (cross_replace): the config writes it as the option it is now
    out: dict[str, Any] = {k: v for k, v in row.extra.items() if k in fields or k in OLD_KEYS}
    for key, value in row.options.items():
        if key == "options" and isinstance(value, dict) and "options" in fields:
            out.setdefault("options", {}).update(value)
        elif key not in fields and isinstance(value, dict) and "options" in fields:
            out.setdefault("options", {})[key] = value
        else:
            out[key] = value
    if row.seed is not None:
        out["seed"] = row.seed
    if row.mask is not None and "structure_area" not in out and "color_area" not in out \
            and not base.model_copy(update=out).needs_mask:
        out.update(structure_area="masked", color_area="masked")
    return out


def effective_config(row: Row, base: EditConfig) -> BaseModel:
    """The validated config a row runs with (EditConfig, or RefineConfig for refine rows)."""
    overrides = row_overrides(row, base)
    cls: type[BaseModel] = RefineConfig if row.task == "refine" else EditConfig
    data = base.model_dump()
    if cls is RefineConfig:
        # align and post_processors mean another thing after an edit: refine's own defaults hold
        # unless the run set them
        own = ("align", "post_processors")
        data = {k: v for k, v in data.items()
                if k in RefineConfig.model_fields and (k not in own or k in base.model_fields_set)}
        # what the edit leaves to its profile (the solver) a refine row takes from it now
        data.update({k: v for k, v in base.profile_defaults().items() if data.get(k, 0) is None})
        overrides.pop("seed", None)  # refine is deterministic; a seed column changes nothing
    if overrides.get("options"):  # field by field over the run's, as Editor.edit merges them
        from spl_sdk.options import merge_options

        overrides["options"] = merge_options(base.options, overrides["options"])
    data.update(overrides)
    try:
        cfg = cls(**data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, f"row '{row.id}' options", cls)) from None
    if row.task == "harmonize":  # docs/method.md section 6's losses win over the row's
        from spl_sdk.harmonizing import harmonize_config

        return harmonize_config(cfg)
    return cfg


def key_config(cfg: BaseModel) -> dict[str, Any]:
    """The part of a config that decides the pixels (placement fields left out)."""
    return {k: v for k, v in cfg.model_dump(mode="json").items() if k not in PLACEMENT_FIELDS}
