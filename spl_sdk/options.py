"""Options per component: parse ``NAME.FIELD=VALUE``, merge sources, resolve names, validate.

Every component class may declare a pydantic ``Options`` model (see
:class:`spl_sdk.components.base.ComponentOptions`). Users address a component
by its registry name, or ``KIND/NAME`` where one name exists in two kinds
(``loss/spl``); raw options are ``{NAME: {FIELD: VALUE}}`` from config files,
the API and ``--option NAME.FIELD=VALUE`` flags. Every mistake is one
:class:`~spl_sdk.errors.ConfigError` line that lists the component's fields.
"""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretStr

from spl_sdk.components import KIND_BASES
from spl_sdk.components.base import (  # noqa: F401 - re-exported
    SECRET_HINTS,
    Component,
    ComponentOptions,
    describe_fields,
    validate_fields,
)
from spl_sdk.errors import ConfigError
from spl_sdk.rawoptions import (  # noqa: F401 - re-exported
    RawOptions,
    check_shape,
    merge_options,
    parse_option,
    parse_options,
    parse_value,
)
from spl_sdk.renamed import current_key
from spl_sdk.text import a

if TYPE_CHECKING:
    from spl_sdk.components import Backbone
    from spl_sdk.plugins import Plugins

# config fields that name the component of a kind, in the order an edit uses them
COMPONENT_FIELDS = (("backbone", "backbone"), ("method", "method"), ("attention", "attention"),
                    ("structure_loss", "loss"), ("color_loss", "loss"),
                    ("mask_extractor", "mask-extractor"), ("post_processors", "post-processor"))


def _label(kind: str) -> str:
    base = KIND_BASES.get(kind)
    return base.kind_label if base is not None else kind


# ---------------------------------------------------------------------- resolving names
def resolve_key(plugins: Plugins, key: str, where: str = "in options") -> tuple[str, str]:
    """(kind, name) of an options key ``NAME`` or ``KIND/NAME``; one clear error otherwise."""
    registry = plugins.registry
    key = current_key(key)  # 0.1's names (attention/infedit, mask/..., tiny-random) read as today's
    kind, slash, name = key.rpartition("/")
    if slash:
        if kind not in registry:
            raise ConfigError(f"unknown component kind '{kind}' {where} ('{key}'); kinds: "
                              f"{', '.join(registry)}.")
        if name not in registry[kind]:
            available = ", ".join(sorted(registry[kind])) or "none installed"
            raise ConfigError(f"unknown {_label(kind)} '{name}' {where} ('{key}'); "
                              f"available: {available}.")
        return kind, name
    kinds = [k for k, names in registry.items() if key in names]
    if len(kinds) > 1:
        both = " and ".join(a(_label(k)) for k in kinds)
        spelled = " or ".join(f"{k}/{key}" for k in kinds)
        raise ConfigError(f"'{key}' {where} names {both}; write {spelled} to say which one.")
    if not kinds:
        names = sorted({n for names in registry.values() for n in names})
        close = difflib.get_close_matches(key, names, n=1)
        hint = f" did you mean '{close[0]}'?" if close else ""
        with_options = sorted({n for names in registry.values() for n, infos in names.items()
                               if infos and infos[0].cls.Options.model_fields})
        raise ConfigError(f"unknown component '{key}' {where};{hint} components with options: "
                          f"{', '.join(with_options) or 'none'} ('spl plugins' lists them all).")
    return kinds[0], key


def options_for(plugins: Plugins, kind: str, name: str,
                raw: Mapping[str, Mapping[str, Any]] | None) -> ComponentOptions:
    """The validated Options of component ``name`` of ``kind`` from raw user options."""
    cls = plugins.get(kind, name)
    fields: dict[str, Any] = {}
    shaped = check_shape(raw)
    keys = sorted((key for key in shaped if key in (name, f"{kind}/{name}")), key=lambda k: "/" in k)
    for key in keys:  # KIND/NAME wins over NAME
        resolve_key(plugins, key)  # a NAME that exists in two kinds must be spelt KIND/NAME
        fields.update(shaped[key])
    return validate_fields(cls, fields, keys[-1] if keys else name)


def check_options(plugins: Plugins, raw: Mapping[str, Mapping[str, Any]] | None) -> None:
    """Validate every entry of raw options (name, fields, values) before any model work."""
    for key, fields in check_shape(raw).items():
        kind, name = resolve_key(plugins, key)
        validate_fields(plugins.get(kind, name), fields, key)


# ---------------------------------------------------------------------- construction
def construct(plugins: Plugins, kind: str, name: str, raw: Mapping[str, Mapping[str, Any]] | None,
              *args: Any, **kwargs: Any) -> Any:
    """Instantiate component ``name`` of ``kind`` with its validated ``options=``."""
    return plugins.get(kind, name)(*args, options=options_for(plugins, kind, name, raw), **kwargs)


def load_backbone(plugins: Plugins, config: Any) -> Backbone:
    """Check all options, then load the configured backbone with its own (the slow part comes last)."""
    check_options(plugins, config.options)
    cls = plugins.backbone(config.backbone)
    options = options_for(plugins, "backbone", config.backbone, config.options)
    kwargs: dict[str, Any] = {"device": config.device, "dtype": config.dtype,
                              "cpu_offload": config.cpu_offload}
    params = inspect.signature(cls.load).parameters
    if "options" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs["options"] = options
    backbone = cls.load(config.model, **kwargs)
    backbone.options = options  # also for a third-party load() that does not take options yet
    return backbone


def used_components(plugins: Plugins, config: BaseModel, uses_attention: bool = True) -> list[tuple[str, str]]:
    """(kind, name) of each component the configuration selects and would use.

    ``uses_attention`` False: the edit method drives no attention controller, so none is used.
    """
    data = config.model_dump()
    unused = set() if uses_attention else {"attention"}
    if getattr(config, "needs_region", True) is False:  # no masked loss and the edit not confined
        unused.add("mask_extractor")
    if data.get("post_process") is False:
        unused.add("post_processors")
    found = []
    for field, kind in COMPONENT_FIELDS:
        value = data.get(field)
        if field in unused or not value or kind not in plugins.registry:
            continue
        for name in value if isinstance(value, list) else [value]:  # post_processors is a list
            if (kind, name) not in found:
                found.append((kind, name))
    return found


def key_of(plugins: Plugins, kind: str, name: str) -> str:
    """The options key for a component: its name, or KIND/NAME where the name is in two kinds."""
    kinds = [k for k, names in plugins.registry.items() if name in names]
    return name if kinds == [kind] else f"{kind}/{name}"


def resolved_options(plugins: Plugins, config: BaseModel, backbone: Backbone | None = None,
                     uses_attention: bool = True) -> RawOptions:
    """Every option value (defaults included) of the components ``config`` uses, for metadata.

    With ``backbone`` (already loaded), options that would give it different
    options are refused: a backbone's options are fixed when it is loaded.
    """
    raw = getattr(config, "options", {})
    check_options(plugins, raw)
    raw = merge_options(profile_options(plugins, config), raw)  # the user's values win field by field
    out: RawOptions = {}
    for kind, name in used_components(plugins, config, uses_attention):
        options = options_for(plugins, kind, name, raw)
        loaded = getattr(backbone, "options", None)
        if kind == "backbone" and backbone is not None and loaded is not None and options != loaded:
            raise ConfigError(f"the options of backbone '{name}' cannot change per edit (the model is "
                              f"already loaded); build a new Editor with Editor.from_config(...) instead.")
        if type(options).model_fields:
            out[key_of(plugins, kind, name)] = public_dump(options)
    return out


def profile_options(plugins: Plugins, config: BaseModel) -> RawOptions:
    """The option values the configuration's profile sets for the components it uses (their ``profile_options``)."""
    profile = getattr(config, "profile", None)
    out: RawOptions = {}
    for kind, name in used_components(plugins, config) if profile else ():
        fields = plugins.get(kind, name).profile_options.get(profile)
        if fields:
            out[key_of(plugins, kind, name)] = dict(fields)
    return out


def public_dump(options: ComponentOptions) -> dict[str, Any]:
    """JSON values of the options fit for metadata: secrets (SecretStr, repr=False) left out."""
    hidden = {name for name, f in type(options).model_fields.items()
              if not f.repr or SecretStr in (f.annotation, *typing.get_args(f.annotation))}
    return options.model_dump(mode="json", exclude=hidden)


def with_resolved_options(plugins: Plugins, config: Any, backbone: Backbone | None = None,
                          uses_attention: bool = True) -> Any:
    """``config`` with its options replaced by the full options of the components it uses.

    Unset loss weights become the loss's ``default_weight``, so the record says what ran.
    """
    update: dict[str, Any] = {"options": resolved_options(plugins, config, backbone, uses_attention)}
    for role in ("structure", "color"):
        name = getattr(config, f"{role}_loss", None)
        if name is not None and getattr(config, f"{role}_weight", 0) is None:
            update[f"{role}_weight"] = float(plugins.loss_term(name).default_weight)
    return config.model_copy(update=update)
