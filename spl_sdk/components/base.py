"""The common part of every component kind: a registry name, a summary and typed options."""

from __future__ import annotations

import difflib
import types
import typing
from abc import ABC
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from spl_sdk.errors import ConfigError
from spl_sdk.strict import ComponentOptions, reject_bool_for_number  # noqa: F401 - re-exported
from spl_sdk.text import SECRET_HINTS, secret_name, shown  # noqa: F401 - SECRET_HINTS re-exported


@dataclass(frozen=True)
class OptionInfo:
    """One option field as users see it: name, type, default, range and description."""

    name: str
    type: str
    default: Any
    range: str | None
    description: str


def type_name(annotation: Any) -> str:
    """A short, readable name of a field's type ('int', 'float', 'str | None', "'a' | 'b'")."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin is not None and typing.get_args(annotation):
        args = typing.get_args(annotation)
        if origin in (typing.Union, types.UnionType):
            return " | ".join("None" if a is type(None) else type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_name(a) for a in args)}]"
    return getattr(annotation, "__name__", str(annotation))


def field_range(field: FieldInfo) -> str | None:
    """A field's numeric bounds as text ('1 to 64', '> 0'), or None when it has none."""
    bounds = {k: getattr(m, k) for m in field.metadata for k in ("ge", "gt", "le", "lt")
              if getattr(m, k, None) is not None}
    bounds = {k: f"{v:g}" if isinstance(v, float) else str(v) for k, v in bounds.items()}  # 1e+08
    if "ge" in bounds and "le" in bounds:
        return f"{bounds['ge']} to {bounds['le']}"
    ops = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
    return ", ".join(f"{op} {bounds[k]}" for k, op in ops if k in bounds) or None


class Component(ABC):  # noqa: B024 - abstract through its subclasses
    """Common part of every component: a registry name, a one-line summary and an ``Options`` model.

    Each kind's base class declares ``kind`` (its registry key), ``kind_label`` (how messages
    name it) and ``register_hook`` (the hook that registers it): the table of kinds is
    derived from them (:data:`spl_sdk.components.KIND_BASES`).
    """

    kind: ClassVar[str] = "component"
    kind_label: ClassVar[str] = "component"
    register_hook: ClassVar[str] = ""
    name: ClassVar[str] = ""
    Options: ClassVar[type[ComponentOptions]] = ComponentOptions
    # option values a named profile (EditConfig.profile) sets where the user gives none,
    # e.g. {"paper": {"chroma": "kornia"}}: the component, not the core, owns what a profile means
    profile_options: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    options: ComponentOptions

    @classmethod
    def summary(cls) -> str:
        """First line of the class docstring, shown by ``spl plugins`` and the app."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    @classmethod
    def make_options(cls, options: ComponentOptions | Mapping[str, Any] | None = None) -> ComponentOptions:
        """``options`` as this class's Options: None gives the defaults, a mapping is validated."""
        if options is None:
            return cls.Options()
        if isinstance(options, cls.Options):
            return options
        if isinstance(options, Mapping):
            return validate_fields(cls, dict(options))
        raise TypeError(f"options of {cls.__name__} must be a {cls.Options.__name__}, a mapping or "
                        f"None, not {type(options).__name__}")

    @classmethod
    def describe_options(cls) -> list[OptionInfo]:
        """Each option field's name, type, default, range and description (for help and listings)."""
        return [OptionInfo(name, type_name(f.annotation), f.get_default(call_default_factory=True),
                           field_range(f), f.description or "")
                for name, f in cls.Options.model_fields.items()]


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
    what = f"{cls.kind_label} '{cls.name}'"
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
                secret = (info is not None and not info.repr) or secret_name(field)
                value = "***" if secret else shown(fields.get(field, err.get("input")))
                problems.append(f"'{key}.{field}' = {value}: {message[:1].lower() + message[1:]}")
        raise ConfigError(f"invalid options for {what}: {'; '.join(problems)}; its options are "
                          f"{describe_fields(cls)}.") from None
