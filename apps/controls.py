"""Widgets generated from the pydantic ``EditConfig`` fields: defaults, ranges and help come from there.

Each field has one widget keyed ``cfg.<field>``; its value lives in
``st.session_state`` in the widget's own form (comma-separated words, "" for
None), and :func:`config_from_state` turns the values back into a validated
config. Nothing here repeats a default: :func:`widget_default` derives it.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import annotated_types
import streamlit as st
from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo

from spl_sdk.config import EditConfig, describe_validation_error
from spl_sdk.errors import ConfigError
from spl_sdk.options import COMPONENT_FIELDS
from spl_sdk.plugins import Plugins

PREFIX = "cfg."
# fields whose value names a plug-in of this kind: the widget lists the installed ones
PLUGIN_KIND = {field: kind for field, kind in COMPONENT_FIELDS if field != "post_processors"}
# optional loss terms get an on/off toggle (key cfg.<field>.on) beside the plug-in choice
TOGGLED = {"structure_loss": "Preserve structure", "color_loss": "Preserve color"}
# a loss that is off by default still needs a plug-in to offer when switched on
SUGGESTED = {"color_loss": "cpl", "structure_loss": "spl"}
# a weight's loss: an empty weight means that loss's own default_weight, shown as the placeholder
WEIGHT_OF = {"structure_weight": "structure_loss", "color_weight": "color_loss"}
# list fields that name installed plug-ins: a pick-list in the order picked
PICK_LISTS = {"post_processors": "post-processor"}
AREA_LABELS = {"whole": "Whole image", "masked": "Masked area"}
# the app takes a mask upload instead of a path; options get widgets from each component's
# Options model (spl_apps.option_controls)
SKIPPED = {"mask_file", "options"}
LABELS = {
    "model": "Model (Hub id or local folder; empty = the backbone's default)",
    "method": "Edit method (empty = the backbone's default)",
    "profile": "Profile (paper = reproduce the paper's code)",
    "working_size": "Working size (px, long side; empty = the backbone's default)",
    "steps": "Inference steps (empty = the method's default)",
    "source_guidance": "Source guidance (empty = the method's default)",
    "target_guidance": "Target guidance (empty = the method's default)",
    "opt_start": "Optimization start",
    "post_process": "Post-process at full size",
    "post_processors": "Post-processors (in order)",
    "align": "Align the edit before post-processing",
    "mask_extractor": "Mask extractor",
    "structure_weight": "Weight",
    "color_weight": "Weight",
    "structure_area": "Area",
    "color_area": "Area",
    "edit_area": "Edit area",
    "structure_loss": "Loss term",
    "color_loss": "Loss term",
    "cpu_offload": "CPU offload",
    "dtype": "Dtype",
    "solver": "Solver",
}


def key(name: str) -> str:
    """Session-state key of the widget for config field ``name``."""
    return PREFIX + name


def field(name: str) -> FieldInfo:
    """The pydantic field ``name`` of EditConfig."""
    return EditConfig.model_fields[name]


def bounds(name: str) -> tuple[Any, Any, Any]:
    """(ge, le, multiple_of) of a field from its pydantic metadata; None where unset."""
    return field_bounds(field(name))


def field_bounds(info: FieldInfo) -> tuple[Any, Any, Any]:
    """(ge, le, multiple_of) of any pydantic field; None where unset."""
    ge = le = multiple = None
    for m in info.metadata:
        if isinstance(m, annotated_types.Ge):
            ge = m.ge
        elif isinstance(m, annotated_types.Le):
            le = m.le
        elif isinstance(m, annotated_types.MultipleOf):
            multiple = m.multiple_of
    return ge, le, multiple


def _base_type(annotation: Any) -> Any:
    """The annotation without ``| None``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def to_widget(name: str, value: Any) -> Any:
    """A config value in the form its widget holds."""
    base = _base_type(field(name).annotation)
    if name in PICK_LISTS:
        return list(value)
    if name in WEIGHT_OF:
        return None if value is None else float(value)
    if typing.get_origin(base) is list:
        return ", ".join(value)
    if typing.get_origin(base) is dict:
        return ", ".join(f"{w}={f:g}" for w, f in value.items())
    if name in TOGGLED:
        return value or SUGGESTED[name]
    if base is str and value is None:
        return ""
    return value


def widget_default(name: str) -> Any:
    """The widget value that stands for the field's default."""
    return to_widget(name, field(name).get_default(call_default_factory=True))


def state_names() -> list[str]:
    """Session-state keys of every config widget, toggles included."""
    names = [key(n) for n in EditConfig.model_fields if n not in SKIPPED]
    return names + [key(n) + ".on" for n in TOGGLED]


def reset_state(values: Mapping[str, Any] | None = None) -> None:
    """Set every config widget to its default, then to ``values`` (config field -> value)."""
    for name in EditConfig.model_fields:
        if name not in SKIPPED:
            st.session_state[key(name)] = widget_default(name)
    for name in TOGGLED:
        st.session_state[key(name) + ".on"] = field(name).default is not None
    for name, value in (values or {}).items():
        if name in TOGGLED:
            st.session_state[key(name) + ".on"] = value is not None
        st.session_state[key(name)] = to_widget(name, value)


def ensure_state() -> None:
    """Fill missing widget values with defaults and keep hidden widgets' values across reruns."""
    if any(k not in st.session_state for k in state_names()):
        present = {k: st.session_state[k] for k in state_names() if k in st.session_state}
        reset_state()
        st.session_state.update(present)
    for k in state_names():
        # re-assigning turns a widget value into a kept one, so hiding a widget does not drop it
        st.session_state[k] = st.session_state[k]


def from_widget(name: str, value: Any) -> Any:
    """The config value of a widget value (inverse of :func:`to_widget`)."""
    base = _base_type(field(name).annotation)
    if name in TOGGLED and not st.session_state.get(key(name) + ".on", True):
        return None
    if typing.get_origin(base) is dict:
        return value  # "word=factor, ..." text: EditConfig parses it and names a bad entry
    if base is str and field(name).default is None and value == "":
        return None
    return value


def config_from_state(**overrides: Any) -> EditConfig:
    """A validated EditConfig from the widget values (raises ConfigError naming the field)."""
    data = {n: from_widget(n, st.session_state[key(n)]) for n in EditConfig.model_fields
            if n not in SKIPPED and key(n) in st.session_state}
    data.update(overrides)
    return validated(EditConfig, data)


def validated(model: type[Any], data: dict[str, Any]) -> Any:
    """``model(**data)``, or a ConfigError naming the setting that does not fit."""
    try:
        return model(**data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "the settings")) from None


def _label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())


def _plugin_options(name: str, plugins: Plugins) -> list[str]:
    names = plugins.names(PLUGIN_KIND[name])
    current = st.session_state.get(key(name))
    # keep the default (and the current choice) selectable even if its plug-in is missing:
    # choosing it then gives the plug-in manager's own message naming what is installed
    for extra in (widget_default(name), current):
        if extra and extra not in names:
            names = [*names, extra]
    if field(name).default is None and name not in TOGGLED:
        names = ["", *names]  # empty: the backbone's default (e.g. its default_method)
    return names


def _number_step(info: FieldInfo) -> Any:
    ge, le, multiple = field_bounds(info)
    base = _base_type(info.annotation)
    if multiple:
        return multiple
    if base is int:
        return 1
    if isinstance(info.default, float) and 0 < abs(info.default) < 0.1:  # a small regularizer
        return abs(info.default) / 10
    if le is not None and ge is not None and le - ge <= 1:
        return 0.05
    if le is not None:
        return 0.1
    default = info.default or 1.0
    return max(float(default) / 10, 0.1)


def widget(name: str, plugins: Plugins, container: Any = st, **kwargs: Any) -> Any:
    """Draw the widget of config field ``name`` and return its (widget-form) value."""
    f = field(name)
    label = kwargs.pop("label", None) or _label(name)
    opts: dict[str, Any] = {"key": key(name), "help": f.description, **kwargs}
    if name in PLUGIN_KIND:
        return container.selectbox(label, _plugin_options(name, plugins), **opts)
    if name in PICK_LISTS:
        names = plugins.names(PICK_LISTS[name])
        chosen = [n for n in st.session_state.get(key(name)) or [] if n not in names]
        return container.multiselect(label, names + chosen, placeholder="none: the edit as denoised",
                                     **opts)
    if name in WEIGHT_OF:
        return weight_widget(name, plugins, label, container, **opts)
    return field_widget(label, f, container, **opts)


def loss_default_weight(plugins: Plugins, loss: str | None) -> float | None:
    """The ``default_weight`` the loss plug-in ``loss`` declares (None when it is not installed)."""
    if not loss or loss not in plugins.names("loss"):
        return None
    return float(plugins.loss_term(loss).default_weight)


def weight_widget(name: str, plugins: Plugins, label: str, container: Any = st, **opts: Any) -> Any:
    """A loss weight as a number field over its whole range; empty = the chosen loss's default_weight."""
    ge, le, _ = bounds(name)
    loss = st.session_state.get(key(WEIGHT_OF[name]))
    default = loss_default_weight(plugins, loss)
    if default is not None:
        opts["placeholder"] = f"{default:g} ({loss}'s default)"
        opts["help"] = f"{opts.get('help') or ''} Empty: {default:g}, the default of '{loss}'.".strip()
    # a tenth of the default per click: weights span several orders of magnitude
    step = max((default or 1000.0) / 10, 1e-6)
    return container.number_input(label, min_value=float(ge), max_value=float(le), step=step,
                                  format="%g", **opts)


def field_widget(label: str, f: FieldInfo, container: Any = st, **opts: Any) -> Any:
    """A widget for any pydantic field from its type, range and description (``opts``: key, help...)."""
    base = _base_type(f.annotation)
    allowed = list(typing.get_args(base)) if typing.get_origin(base) is Literal else None
    if allowed is not None:
        if set(allowed) == set(AREA_LABELS):
            return container.radio(label, allowed, format_func=AREA_LABELS.get, horizontal=True, **opts)
        return container.selectbox(label, allowed, **opts)
    if base is bool:
        return container.checkbox(label, **opts)
    ge, le, _ = field_bounds(f)
    if base in (int, float):
        step = _number_step(f)
        number = base
        optional = type(None) in typing.get_args(f.annotation)  # None: the owner's default
        if optional:
            opts.setdefault("placeholder", "default")
        if base is float and le is not None and ge is not None and not optional:
            return container.slider(label, min_value=float(ge), max_value=float(le),
                                    step=float(step), **opts)
        if base is float and isinstance(f.default, float) and 0 < abs(f.default) < 0.01:
            opts.setdefault("format", "%g")  # 1e-4 would show as 0.00
        return container.number_input(label, min_value=None if ge is None else number(ge),
                                      max_value=None if le is None else number(le),
                                      step=number(step), **opts)
    if typing.get_origin(base) is list:
        return container.text_input(label, placeholder="comma-separated words", **opts)
    if typing.get_origin(base) is dict:
        return container.text_input(label, placeholder="e.g. red=2, sky=0.5", **opts)
    if base is SecretStr:
        return container.text_input(label, type="password", **opts)
    if base in (str, Path):
        return container.text_input(label, **opts)
    raise TypeError(f"no widget for field {label!r} of type {f.annotation!r}")


def loss_toggle(name: str, plugins: Plugins, container: Any = st,
                on_change: Callable[[], None] | None = None) -> bool:
    """The "Preserve structure"/"Preserve color" switch plus its loss-term choice."""
    on = container.toggle(TOGGLED[name], key=key(name) + ".on", help=field(name).description,
                          on_change=on_change)
    widget(name, plugins, container, disabled=not on)
    return bool(on)
