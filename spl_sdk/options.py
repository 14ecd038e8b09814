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
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretStr, ValidationError

from spl_sdk.components.base import Component, ComponentOptions
from spl_sdk.errors import ConfigError
from spl_sdk.text import looks_secret, shown

if TYPE_CHECKING:
    from spl_sdk.components import Backbone
    from spl_sdk.plugins import Plugins

RawOptions = dict[str, dict[str, Any]]
SECRET_HINTS = ("key", "token", "secret", "password")  # values never echoed in an error line
# config fields that name the component of a kind, in the order an edit uses them
COMPONENT_FIELDS = (("backbone", "backbone"), ("method", "method"), ("attention", "attention"),
                    ("structure_loss", "loss"), ("color_loss", "loss"),
                    ("mask_extractor", "mask"), ("post_processors", "postprocess"))


def _label(kind: str) -> str:
    from spl_sdk.plugins import KIND_LABEL

    return KIND_LABEL.get(kind, kind)


def _kind_of(cls: type) -> str:
    from spl_sdk.components import KIND_BASES

    return next((kind for kind, base in KIND_BASES.items() if issubclass(cls, base)), "component")


# ---------------------------------------------------------------------- parsing and merging
def parse_value(text: str) -> Any:
    """VALUE as JSON when it parses (3, 1e-3, true, null, "x", [1, 2]), else the text itself."""
    from spl_sdk.parsing import ParseError, TooDeepError, loads

    try:
        return loads(text, "json", "an --option value")
    except TooDeepError:
        raise
    except ParseError:
        return text


def parse_option(text: str) -> tuple[str, str, Any]:
    """``NAME.FIELD=VALUE`` (or ``KIND/NAME.FIELD=VALUE``) as (component, field, value)."""
    target, sep, value = text.partition("=")
    component, dot, field = target.strip().rpartition(".")
    if not sep or not dot or not component or not field.strip():
        if looks_secret(value.strip()) or looks_secret(text.strip()):
            text = f"{target}=***" if sep else "***"
        raise ConfigError(f"option '{text}' must look like NAME.FIELD=VALUE, e.g. spl.radius=3 "
                          f"(KIND/NAME.FIELD=VALUE where a name exists in two kinds).")
    return component.strip(), field.strip(), parse_value(value.strip())


def parse_options(texts: Iterable[str]) -> RawOptions:
    """Raw options from repeated ``--option`` texts; a later one wins over an earlier one."""
    out: RawOptions = {}
    for text in texts:
        component, field, value = parse_option(text)
        out.setdefault(component, {})[field] = value
    return out


def check_shape(raw: Any, source: str = "options") -> RawOptions:
    """``raw`` as {NAME: {FIELD: VALUE}}, also from a list of ``NAME.FIELD=VALUE`` texts."""
    if raw is None:
        return {}
    if isinstance(raw, str):
        raw = [raw]
    if isinstance(raw, list | tuple):
        return parse_options(str(t) for t in raw)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source} must map component names to {{field: value}} mappings, "
                          f"e.g. {{\"spl\": {{\"radius\": 3}}}}; got {type(raw).__name__}.")
    for name, fields in raw.items():
        if not isinstance(fields, Mapping):
            raise ConfigError(f"{source} of '{name}' must be a mapping of option names to values, "
                              f"e.g. {{\"{name}\": {{\"FIELD\": VALUE}}}}; got {shown(fields)}.")
    return {str(k): dict(v) for k, v in raw.items()}


def merge_options(*sources: Mapping[str, Mapping[str, Any]] | None) -> RawOptions:
    """Field-by-field merge: later sources (file, then CLI, then API) win over earlier ones."""
    out: RawOptions = {}
    for source in sources:
        for name, fields in check_shape(source).items():
            out.setdefault(name, {}).update(fields)
    return out


# ---------------------------------------------------------------------- resolving names
def resolve_key(plugins: Plugins, key: str, where: str = "in options") -> tuple[str, str]:
    """(kind, name) of an options key ``NAME`` or ``KIND/NAME``; one clear error otherwise."""
    registry = plugins.registry
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
        both = " and ".join(f"a {_label(k)}" for k in kinds)
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


def describe_fields(cls: type[Component]) -> str:
    """'radius (int, 1 to 64, default 5), eps (float, > 0, default 0.0001)' for error lines."""
    parts = []
    for info in cls.describe_options():
        extra = ", ".join(filter(None, [info.type, info.range, f"default {info.default!r}"]))
        parts.append(f"{info.name} ({extra})")
    return ", ".join(parts)


def validate_fields(cls: type[Component], fields: Mapping[str, Any], key: str | None = None) -> ComponentOptions:
    """``cls.Options`` from ``fields``; a bad field gives one line listing every field and range."""
    key = key or cls.name
    what = f"{_label(_kind_of(cls))} '{cls.name}'"
    if not cls.Options.model_fields and fields:
        raise ConfigError(f"{what} has no options, so '{key}.{next(iter(fields))}' cannot be set.")
    try:
        return cls.Options.model_validate(dict(fields))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "?"
            if err["type"] == "extra_forbidden":
                close = difflib.get_close_matches(field, list(cls.Options.model_fields), n=1)
                problems.append(f"unknown option '{key}.{field}'" + (f" (did you mean '{close[0]}'?)"
                                                                     if close else ""))
            else:
                message = str(err["msg"]).removeprefix("Value error, ")
                info = cls.Options.model_fields.get(field)
                secret = (info is not None and not info.repr) or any(h in field.lower() for h in SECRET_HINTS)
                value = "***" if secret else shown(fields.get(field, err.get("input")))
                problems.append(f"'{key}.{field}' = {value}: {message[:1].lower() + message[1:]}")
        raise ConfigError(f"invalid options for {what}: {'; '.join(problems)}; its options are "
                          f"{describe_fields(cls)}.") from None


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


def used_components(plugins: Plugins, config: BaseModel) -> list[tuple[str, str]]:
    """(kind, name) of each component the configuration selects and would use."""
    data = config.model_dump()
    unused = set()
    if getattr(config, "needs_mask", True) is False:
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


def resolved_options(plugins: Plugins, config: BaseModel, backbone: Backbone | None = None) -> RawOptions:
    """Every option value (defaults included) of the components ``config`` uses, for metadata.

    With ``backbone`` (already loaded), options that would give it different
    options are refused: a backbone's options are fixed when it is loaded.
    """
    raw = getattr(config, "options", {})
    check_options(plugins, raw)
    raw = merge_options(profile_options(plugins, config), raw)  # the user's values win field by field
    out: RawOptions = {}
    for kind, name in used_components(plugins, config):
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


def with_resolved_options(plugins: Plugins, config: Any, backbone: Backbone | None = None) -> Any:
    """``config`` with its options replaced by the full options of the components it uses.

    Unset loss weights become the loss's ``default_weight``, so the record says what ran.
    """
    update: dict[str, Any] = {"options": resolved_options(plugins, config, backbone)}
    for role in ("structure", "color"):
        name = getattr(config, f"{role}_loss", None)
        if name is not None and getattr(config, f"{role}_weight", 0) is None:
            update[f"{role}_weight"] = float(plugins.loss_term(name).default_weight)
    return config.model_copy(update=update)
