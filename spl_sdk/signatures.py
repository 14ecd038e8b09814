"""Check a component class against its kind's contract when it registers: methods and options.

A post-processor whose ``process`` lacks a parameter, or an ``Options`` model that would
let a misspelt option pass, is refused with one line at registration, not met as a
TypeError (or silence) in the middle of a run.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

from pydantic import BaseModel, ValidationError

from spl_sdk.components.base import Component, ComponentOptions

# Parameters an override may leave out because the SDK checks for them before passing them:
# a backbone that cannot sample the posterior, one whose load() predates options=, a
# post-processor written before callback= (it may take progress= instead), and a harmonizer
# without the older keyword spelling of its options (the SDK passes only options=).
OPTIONAL: dict[tuple[str, str], frozenset[str]] = {
    ("Backbone", "encode_image"): frozenset({"generator"}),
    ("Backbone", "load"): frozenset({"options"}),
    ("PostProcessor", "process"): frozenset({"callback"}),
    ("Harmonizer", "__init__"): frozenset({"fields"}),
}
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def options_problem(cls: type[Component]) -> str | None:
    """What is wrong with ``cls.Options`` (None when it is a strict model whose fields all have defaults)."""
    options = getattr(cls, "Options", ComponentOptions)
    if not (isinstance(options, type) and issubclass(options, ComponentOptions)):
        plain = isinstance(options, type) and issubclass(options, BaseModel)
        what = "a plain pydantic BaseModel, which would let misspelt options pass unnoticed" if plain \
            else "not a pydantic model"
        return (f"its Options is {what}; derive it from spl_sdk.components.ComponentOptions "
                f"(class Options(ComponentOptions): ...)")
    required = [name for name, field in options.model_fields.items() if field.is_required()]
    if required:
        names = ", ".join(f"'{n}'" for n in required)
        return (f"its option{'s' if len(required) > 1 else ''} {names} {'have' if len(required) > 1 else 'has'} "
                f"no default; give each a default, e.g. {required[0]}: float = Field(1.0, description=...)")
    for profile, fields in getattr(cls, "profile_options", {}).items():
        try:
            options.model_validate(dict(fields))
        except ValidationError as exc:
            return f"its profile_options for profile '{profile}' are not valid options ({exc.errors()[0]['msg']})"
    return None


def _contract_methods(base: type) -> Iterator[tuple[type, str]]:
    """(defining class, name) of every method a kind's base class (and its parents below Component) defines."""
    seen: set[str] = set()
    for owner in base.__mro__:
        if owner is Component or not issubclass(owner, Component):
            continue
        for name, attr in vars(owner).items():
            if name in seen or (name.startswith("_") and name != "__init__"):
                continue
            if isinstance(attr, classmethod | staticmethod) or inspect.isfunction(attr):
                seen.add(name)
                yield owner, name


def _params(cls: type, name: str) -> list[inspect.Parameter]:
    """The parameters of ``cls.name`` as the SDK calls it (self, or a classmethod's cls, left out)."""
    params = list(inspect.signature(getattr(cls, name)).parameters.values())
    plain = inspect.isfunction(inspect.getattr_static(cls, name))  # an instance method: drop self
    return params[1:] if plain and params and params[0].kind in _POSITIONAL else params


def _mismatch(expected: list[inspect.Parameter], given: list[inspect.Parameter],
              optional: frozenset[str]) -> str | None:
    """Why a method with ``given`` parameters cannot take every call ``expected`` allows (None if it can)."""
    has_args = any(p.kind is p.VAR_POSITIONAL for p in given)
    has_kwargs = any(p.kind is p.VAR_KEYWORD for p in given)
    positional = [p for p in given if p.kind in _POSITIONAL]
    by_name = {p.name: p for p in given}
    used: set[str] = set()
    names = [q.name for q in expected if q.kind in _POSITIONAL]
    for i, p in enumerate(q for q in expected if q.kind in _POSITIONAL):
        if i < len(positional):
            used.add(positional[i].name)
            # the SDK passes these by position, so another name is fine, unless it is the name of
            # another parameter: then one is missing and the rest have shifted
            if positional[i].name != p.name and positional[i].name in names:
                return f"its parameter {i + 1} is '{positional[i].name}' where the contract has '{p.name}'"
        elif p.name in optional:
            continue
        elif not has_args and not (p.default is not p.empty and (p.name in by_name or has_kwargs)):
            return f"it lacks the parameter '{p.name}'"
    for p in expected:
        if p.kind is p.KEYWORD_ONLY and p.name not in optional:
            q = by_name.get(p.name)
            if (q is None or q.kind is q.POSITIONAL_ONLY) and not has_kwargs:
                return f"it lacks the keyword parameter '{p.name}'"
            used.add(p.name)
        elif p.kind is p.VAR_POSITIONAL and not has_args and p.name not in optional:
            return "it takes no *args"
        elif p.kind is p.VAR_KEYWORD and not has_kwargs and p.name not in optional:
            return "it takes no **kwargs (the SDK passes keywords it may not know)"
    extra = [p.name for p in given if p.name not in used and p.default is p.empty
             and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in {q.name for q in expected}]
    if extra:
        return f"it requires '{extra[0]}', which the SDK does not pass; give it a default"
    return None


def method_problem(cls: type[Component], base: type[Component]) -> str | None:
    """The first method of ``cls`` whose signature cannot take the calls its kind's contract makes."""
    for owner, name in _contract_methods(base):
        mine, theirs = inspect.getattr_static(cls, name), inspect.getattr_static(owner, name)
        if mine is theirs:
            continue
        expected = f"{name}{_signature_text(owner, name)}"
        for wrapper in (classmethod, staticmethod):
            if isinstance(theirs, wrapper) and not isinstance(mine, wrapper):
                return f"its {name}() is not a {wrapper.__name__}; declare it @{wrapper.__name__} def {expected}"
        if not callable(getattr(cls, name)):
            return f"its {name} is not a method; define def {expected}"
        try:
            given = _params(cls, name)
        except (TypeError, ValueError):  # a builtin without a signature: nothing to compare
            continue
        why = _mismatch(_params(owner, name), given, OPTIONAL.get((owner.__name__, name), frozenset()))
        if why:
            return (f"its method {name}{_signature_text(cls, name)} does not match the contract "
                    f"{expected} ({why})")
    return None


def _signature_text(cls: type, name: str) -> str:
    """``(self, source, edited, terms, callback=None)``: the signature without annotations."""
    static = inspect.getattr_static(cls, name)
    first = "cls" if isinstance(static, classmethod) else "" if isinstance(static, staticmethod) else "self"
    bare = inspect.Signature([p.replace(annotation=p.empty) for p in _params(cls, name)])
    text = str(bare)[1:-1]  # str() places the '*' and '/' markers
    return f"({first}{', ' if first and text else ''}{text})"
