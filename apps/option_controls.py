"""Widgets for the options of the selected components, generated from each component's ``Options``.

The same pydantic models give the CLI's ``--option`` checks, ``spl plugins
NAME`` and these widgets, so defaults, ranges and help are written once, in the
plug-in. A widget is keyed ``opt.<kind>/<name>.<field>``; its value is kept
while the component is not selected, and only values that differ from the
default reach the edit.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import streamlit as st
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from spl_apps import controls
from spl_sdk.options import COMPONENT_FIELDS, RawOptions, key_of
from spl_sdk.plugins import KIND_LABEL, Plugins

PREFIX = "opt."


def key(kind: str, name: str, field: str) -> str:
    """Session-state key of the widget of option ``field`` of component ``kind/name``."""
    return f"{PREFIX}{kind}/{name}.{field}"


def _setting(name: str) -> Any:
    """A config field's current value from its widget (None when its widget is absent)."""
    k = controls.key(name)
    return controls.from_widget(name, st.session_state[k]) if k in st.session_state else None


def method_in_use(plugins: Plugins) -> str | None:
    """The edit method the settings run: the chosen one, else the chosen backbone's default."""
    method = _setting("method")
    if not method:
        backbone = _setting("backbone")
        if backbone in plugins.names("backbone"):
            method = plugins.backbone(backbone).default_method
    return method or None


def uses_attention(plugins: Plugins) -> bool:
    """Whether the method in use drives an attention controller (FlowEdit does not)."""
    method = method_in_use(plugins)
    if method is None or method not in plugins.names("method"):
        return True  # unknown: keep the settings on view; the edit names the problem
    return bool(plugins.get("method", method).uses_attention)


def selected(plugins: Plugins) -> list[tuple[str, str]]:
    """(kind, name) of each component the current settings use, once each, in pipeline order."""
    masked = any(_setting(loss) is not None and _setting(area) == "masked"
                 for loss, area in (("structure_loss", "structure_area"), ("color_loss", "color_area")))
    masked = masked or _setting("edit_area") == "masked"
    skip = {"mask_extractor"} if not masked else set()
    if not uses_attention(plugins):
        skip.add("attention")
    if _setting("post_process") is False:
        skip.add("post_processors")
    found: list[tuple[str, str]] = []
    for field, kind in COMPONENT_FIELDS:
        value = method_in_use(plugins) if field == "method" else None if field in skip else _setting(field)
        for name in value if isinstance(value, list) else [value]:
            if name and kind in plugins.registry and name in plugins.registry[kind] \
                    and (kind, name) not in found:
                found.append((kind, name))
    return found


def _is_secret(info: FieldInfo) -> bool:
    return SecretStr in (info.annotation, *typing.get_args(info.annotation))


def _optional(info: FieldInfo) -> bool:
    return typing.get_origin(info.annotation) in (typing.Union, types.UnionType) and \
        type(None) in typing.get_args(info.annotation)


def to_widget(info: FieldInfo, value: Any) -> Any:
    """An option value in the form its widget holds ("" for None, floats as floats)."""
    if _is_secret(info):  # a key is typed, never shown back
        return ""
    if value is None:  # a number field shows None as empty; a text field as ""
        numeric = {int, float} & set(typing.get_args(info.annotation))
        return None if numeric else ""
    if typing.get_origin(info.annotation) is list:  # a text box of comma-separated words
        return ", ".join(value)
    if typing.get_origin(info.annotation) is dict:
        return ", ".join(f"{w}={f:g}" for w, f in value.items())
    if info.annotation is float:
        return float(value)
    return value


def from_widget(info: FieldInfo, value: Any) -> Any:
    """The option value of a widget value (inverse of :func:`to_widget`)."""
    if value == "" and (_optional(info) or _is_secret(info)):
        return None
    return value


def component_widgets(plugins: Plugins, kind: str, name: str, container: Any = st) -> None:
    """One widget per option of component ``kind/name`` (nothing when it has no options)."""
    cls = plugins.get(kind, name)
    for field, info in cls.Options.model_fields.items():
        k = key(kind, name, field)
        if k not in st.session_state:
            st.session_state[k] = to_widget(info, info.get_default(call_default_factory=True))
        controls.field_widget(field.replace("_", " ").capitalize(), info, container, key=k,
                              help=_with_profiles(info.description or "", cls, field))


def _with_profiles(text: str, cls: type, field: str) -> str:
    """The field's help plus what each profile sets it to while the widget keeps its default."""
    notes = [f"Profile {profile} uses {fields[field]!r} while this stays at its default."
             for profile, fields in getattr(cls, "profile_options", {}).items() if field in fields]
    return " ".join([text, *notes]).strip()


def values(plugins: Plugins, kind: str, name: str) -> dict[str, Any]:
    """The options of ``kind/name`` whose widgets differ from the default."""
    out = {}
    for field, info in plugins.get(kind, name).Options.model_fields.items():
        k = key(kind, name, field)
        if k in st.session_state:  # compared in the widget's form ("a, b" text for words)
            if st.session_state[k] != to_widget(info, info.get_default(call_default_factory=True)):
                out[field] = from_widget(info, st.session_state[k])
    return out


def options_from_state(plugins: Plugins) -> RawOptions:
    """Raw options {NAME: {FIELD: VALUE}} of the selected components, as the edit takes them."""
    out: RawOptions = {}
    for kind, name in selected(plugins):
        changed = values(plugins, kind, name)
        if changed:
            out[key_of(plugins, kind, name)] = changed
    return out


def set_values(plugins: Plugins, options: RawOptions) -> None:
    """Set option widgets from raw options keyed ``KIND/NAME`` (an example's settings)."""
    for component, fields in options.items():
        kind, _, name = component.partition("/")
        model = plugins.get(kind, name).Options
        for field, value in fields.items():
            st.session_state[key(kind, name, field)] = to_widget(model.model_fields[field], value)


def reset_state() -> None:
    """Every option back to its default (the widgets are re-created with their defaults)."""
    for k in [k for k in st.session_state if str(k).startswith(PREFIX)]:
        del st.session_state[k]


def keep_state() -> None:
    """Keep option values of components that are not drawn on this run (hidden widgets)."""
    for k in [k for k in st.session_state if str(k).startswith(PREFIX)]:
        st.session_state[k] = st.session_state[k]


def sidebar_section(plugins: Plugins) -> None:
    """An expander with the options of every selected component that has any."""
    keep_state()
    # the mask extractor's options are drawn on the page, beside its choice
    chosen = [(kind, name) for kind, name in selected(plugins)
              if kind != "mask-extractor" and plugins.get(kind, name).Options.model_fields]
    with st.expander("Component options", expanded=False):
        if not chosen:
            st.caption("The selected components have no options.")
        for kind, name in chosen:
            st.markdown(f"**{name}** ({KIND_LABEL.get(kind, kind)})")
            component_widgets(plugins, kind, name)
