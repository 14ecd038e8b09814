"""The common part of every component kind: a registry name, a summary and typed options."""

from __future__ import annotations

import types
import typing
from abc import ABC
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic.fields import FieldInfo


def reject_bool_for_number(model: type[BaseModel], name: str | None, value: Any) -> Any:
    """``value`` unchanged, or ValueError when it is a bool for an int/float field (lax pydantic reads True as 1)."""
    field = model.model_fields.get(name or "")
    if field is None or not isinstance(value, bool | dict):
        return value
    numbers = (int, float, int | None, float | None)
    if isinstance(value, bool) and field.annotation in numbers:
        raise ValueError("a number is expected, not a boolean")
    if isinstance(value, dict) and typing.get_args(field.annotation)[1:] in ((int,), (float,)) \
            and any(isinstance(v, bool) for v in value.values()):
        raise ValueError("every value must be a number, not a boolean")
    return value


class ComponentOptions(BaseModel):
    """Base of a component's ``Options`` model: unknown fields, non-finite numbers and booleans for numbers are refused."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        return reject_bool_for_number(cls, info.field_name, value)


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
    """Common part of every component: a registry name, a one-line summary and an ``Options`` model."""

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
            # imported on use: spl_sdk.options imports this module
            from spl_sdk.options import validate_fields

            return validate_fields(cls, dict(options))
        raise TypeError(f"options of {cls.__name__} must be a {cls.Options.__name__}, a mapping or "
                        f"None, not {type(options).__name__}")

    @classmethod
    def describe_options(cls) -> list[OptionInfo]:
        """Each option field's name, type, default, range and description (for help and listings)."""
        return [OptionInfo(name, type_name(f.annotation), f.get_default(call_default_factory=True),
                           field_range(f), f.description or "")
                for name, f in cls.Options.model_fields.items()]
