"""Raw component options as users write them: ``NAME.FIELD=VALUE`` texts and ``{NAME: {FIELD: VALUE}}``.

A leaf module (it imports only other leaves: errors, parsing, text), so the configuration
models and the option resolver can both read raw options without importing each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from spl_sdk.errors import ConfigError
from spl_sdk.parsing import ParseError, TooDeepError, loads
from spl_sdk.renamed import current_key
from spl_sdk.text import looks_secret, shown

RawOptions = dict[str, dict[str, Any]]


def parse_value(text: str) -> Any:
    """VALUE as JSON when it parses (3, 1e-3, true, null, "x", [1, 2]), else the text itself."""
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
        raw = parse_options(str(t) for t in raw)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source} must map component names to {{field: value}} mappings, "
                          f"e.g. {{\"spl\": {{\"radius\": 3}}}}; got {type(raw).__name__}.")
    for name, fields in raw.items():
        if not isinstance(fields, Mapping):
            raise ConfigError(f"{source} of '{name}' must be a mapping of option names to values, "
                              f"e.g. {{\"{name}\": {{\"FIELD\": VALUE}}}}; got {shown(fields)}.")
    out: RawOptions = {}
    for name, fields in raw.items():  # keys of renamed kinds and components as they are named now
        out.setdefault(current_key(str(name)), {}).update(fields)
    return out


def merge_options(*sources: Mapping[str, Mapping[str, Any]] | None) -> RawOptions:
    """Field-by-field merge: later sources (file, then CLI, then API) win over earlier ones."""
    out: RawOptions = {}
    for source in sources:
        for name, fields in check_shape(source).items():
            out.setdefault(name, {}).update(fields)
    return out
