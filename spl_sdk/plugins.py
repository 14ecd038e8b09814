"""Plug-in manager: loads plug-ins from the ``spl_sdk`` entry-point group and looks up components.

Modeled on pytest/tox/llm: no process-global manager (call :func:`get_plugins`
or build :class:`Plugins` yourself), typed look-ups such as
``plugins.loss_term("spl")``, and the environment variables
``SPL_LOAD_PLUGINS`` (comma-separated allow-list of entry-point names) and
``SPL_DISABLE_PLUGINS`` (deny-list).
"""

from __future__ import annotations

import difflib
import importlib.metadata
import inspect
import os
import types
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

import pluggy

from spl_sdk import hookspecs
from spl_sdk.components import (
    KIND_BASES,
    AttentionController,
    Backbone,
    Component,
    ComponentOptions,
    EditMethod,
    Harmonizer,
    LossTerm,
    MaskExtractor,
    PostProcessor,
)
from spl_sdk.errors import PluginError, SplError, UnknownComponentError
from spl_sdk.renamed import current_kind, current_name
from spl_sdk.signatures import method_problem, options_problem
from spl_sdk.text import a

ENTRY_POINT_GROUP = "spl_sdk"
BUILTIN_PACKAGE = "spl-sdk"  # the built-in plug-ins' distribution

HOOK_OF_KIND = {kind: base.register_hook for kind, base in KIND_BASES.items()}
KIND_LABEL = {kind: base.kind_label for kind, base in KIND_BASES.items()}

C = TypeVar("C", bound=Component)


class PluginWarning(UserWarning):
    """A plug-in that could not be loaded or registered a clashing name."""


@dataclass(frozen=True)
class ComponentInfo:
    """One registered component: its kind, name, class and the plug-in that provides it."""

    kind: str
    name: str
    cls: type
    plugin: str
    package: str
    version: str

    @property
    def summary(self) -> str:
        """The component's one-line description."""
        return self.cls.summary() if hasattr(self.cls, "summary") else ""

    @property
    def options_schema(self) -> dict[str, Any]:
        """JSON Schema of the component's ``Options`` model (no properties when it has none)."""
        options = getattr(self.cls, "Options", None)
        if options is None:
            return {}
        schema = options.model_json_schema()
        if options is ComponentOptions:  # the base's docstring describes no component
            schema.pop("description", None)
        return schema


def _split_env(value: str | None) -> set[str] | None:
    if value is None or not value.strip():
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


class Plugins:
    """A pluggy manager plus the component registry it produces."""

    def __init__(self, *, load_entrypoints: bool = True, env: Mapping[str, str] | None = None) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.load_errors: list[str] = []
        self._dists: dict[str, tuple[str, str]] = {}
        self._registry: dict[str, dict[str, list[ComponentInfo]]] | None = None
        env = os.environ if env is None else env
        self._allow = _split_env(env.get("SPL_LOAD_PLUGINS"))
        self._deny = _split_env(env.get("SPL_DISABLE_PLUGINS")) or set()
        if load_entrypoints:
            self._load_entrypoints()

    # ------------------------------------------------------------------ loading
    def _enabled(self, name: str, dist: str = "") -> bool:
        """Entry-point or package names may appear in SPL_LOAD_PLUGINS / SPL_DISABLE_PLUGINS."""
        names = {name, dist} - {""}
        return not names & self._deny and (self._allow is None or bool(names & self._allow))

    def _load_entrypoints(self) -> None:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            if not self._enabled(ep.name, dist):
                continue
            if self.pm.has_plugin(ep.name):
                if self._dists.get(ep.name, (dist,))[0] != dist:  # same dist seen twice is harmless
                    self._warn(f"plug-in name '{ep.name}' of package {dist} is already used by "
                               f"package {self._dists[ep.name][0]}; {dist}'s plug-in is ignored. "
                               f"Uninstall one of them.")
                continue
            try:
                module = ep.load()
                plugin = self._without_bad_hooks(module, ep.name, dist, version)
                self.register(plugin, name=ep.name, package=dist, version=version)
                if not self.pm.get_hookcallers(plugin) and plugin is module:
                    self._warn(_nothing_registered(ep.name, dist, module))
            except PluginError as exc:  # a hook pluggy refuses for another reason: skip the plug-in
                self._warn(f"{exc} (package {dist} {version}); its components are unavailable.")
            except Exception as exc:  # a broken plug-in must not break unrelated commands
                self._warn(f"plug-in '{ep.name}' from package {dist} {version} failed to import "
                           f"({type(exc).__name__}: {exc}); its components are unavailable. "
                           f"Reinstall it, or set SPL_DISABLE_PLUGINS={ep.name} to silence this.")

    def _without_bad_hooks(self, module: ModuleType, name: str, dist: str, version: str) -> object:
        """``module``, or a stand-in holding only its valid hooks, with a warning naming the others.

        A misspelt hook, or one whose arguments the spec does not have, disables that hook
        alone: the plug-in's other hooks still register their components.
        """
        opts = {attr: self.pm.parse_hookimpl_opts(module, attr) for attr in dir(module)}
        hooks = {attr: getattr(module, attr) for attr, o in opts.items() if o is not None}
        bad = {attr: why for attr, fn in hooks.items()
               if (why := _hook_problem(fn, opts[attr].get("specname") or attr))}
        if not bad:
            return module
        good = sorted(set(hooks) - set(bad))
        left = (f"its other hook{'s' if len(good) > 1 else ''} ({', '.join(good)}) still "
                f"register{'' if len(good) > 1 else 's'} components") if good else "it registers nothing"
        for attr, why in sorted(bad.items()):
            lost = _would_register(hooks[attr])
            what = f"{', '.join(lost)} {'is' if len(lost) == 1 else 'are'}" if lost else \
                "whatever it registers is"
            self._warn(f"plug-in '{name}' from package {dist} {version}: hook {attr} {why}, so that "
                       f"hook is skipped and {what} unavailable; {left}.")
        return types.SimpleNamespace(**{attr: hooks[attr] for attr in good}, __name__=module.__name__)

    def _warn(self, message: str) -> None:
        self.load_errors.append(message)
        warnings.warn(message, PluginWarning, stacklevel=3)

    def register(self, plugin: ModuleType | object, name: str | None = None, *,
                 package: str | None = None, version: str = "") -> str:
        """Register a plug-in object or module (tests and apps use this for inline plug-ins)."""
        name = name or getattr(plugin, "__name__", None) or repr(plugin)
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            raise PluginError(
                f"plug-in '{name}' has an invalid hook: {exc}. Check the hook's name and "
                f"arguments against spl_sdk.hookspecs (every hook starts with 'spl_register_')."
            ) from None
        self._dists[name] = (package or name, version)
        self._registry = None
        return name

    # ------------------------------------------------------------------ registry
    def _collect(self) -> dict[str, dict[str, list[ComponentInfo]]]:
        registry: dict[str, dict[str, list[ComponentInfo]]] = {kind: {} for kind in HOOK_OF_KIND}
        for kind, hook_name in HOOK_OF_KIND.items():
            base = KIND_BASES[kind]
            for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
                package, version = self._dists.get(impl.plugin_name, (impl.plugin_name, ""))

                found: list[ComponentInfo] = []

                def register(cls: type, _kind: str = kind, _base: type = base,
                             _plugin: str = impl.plugin_name, _pkg: str = package,
                             _ver: str = version, _found: list = found) -> None:
                    problem = class_problem(cls, _kind)
                    if problem:  # skip this class, keep the plug-in's others
                        self._warn(f"plug-in '{_plugin}' ({_pkg}) registered {problem}; it is "
                                   f"unavailable.")
                        return
                    _found.append(ComponentInfo(_kind, cls.name, cls, _plugin, _pkg, _ver))

                try:
                    impl.function(register=register)
                except Exception as exc:  # one faulty plug-in must not hide the others' components
                    detail = str(exc) if isinstance(exc, PluginError) else (
                        f"plug-in '{impl.plugin_name}' ({package}) failed in {hook_name}: "
                        f"{type(exc).__name__}: {exc}")
                    self._warn(f"{detail}; its {KIND_LABEL[kind]}s are unavailable.")
                    continue
                for info in found:
                    registry[kind].setdefault(info.name, []).append(info)
        for kind, names in registry.items():
            for name, infos in names.items():
                builtin = [i for i in infos if i.package == BUILTIN_PACKAGE]
                if len(infos) > 1 and len(builtin) == 1:
                    for i in infos:
                        if i is not builtin[0]:
                            self._warn(f"{KIND_LABEL[kind]} '{name}' of package {i.package} has the "
                                       f"name of a built-in; '{name}' keeps meaning the built-in and "
                                       f"'{i.package}:{name}' names {i.package}'s.")
                elif len(infos) > 1:
                    who = " and ".join(f"{i.package} (plug-in '{i.plugin}')" for i in infos)
                    self._warn(f"{KIND_LABEL[kind]} '{name}' is registered by both {who}; "
                               f"uninstall one or disable it with SPL_DISABLE_PLUGINS.")
        return registry

    @property
    def registry(self) -> dict[str, dict[str, list[ComponentInfo]]]:
        """Components by kind and name (a list longer than one means a clash)."""
        if self._registry is None:
            self._registry = self._collect()
        return self._registry

    def names(self, kind: str) -> list[str]:
        """Sorted names of the components of one kind."""
        return sorted(self.registry[current_kind(kind)])

    def info(self, kind: str, name: str) -> ComponentInfo:
        """The component ``name`` (or ``package:name``) of ``kind``; a clear error if unknown or ambiguous."""
        kind = current_kind(kind)  # 0.1's kind and component names still find their component
        label = KIND_LABEL[kind]
        owner, _, bare = name.rpartition(":")
        bare = current_name(kind, bare)
        infos = self.registry[kind].get(bare)
        if owner and infos:  # qualified: the package (or plug-in) that registered it
            infos = [i for i in infos if owner in (i.package, i.plugin)]
        elif infos and len(infos) > 1:  # a built-in keeps its name against third parties
            infos = [i for i in infos if i.package == BUILTIN_PACKAGE] or infos
        if not infos:
            available = ", ".join(self.names(kind)) or "none installed"
            # 0.7: a misspelling ('tiny-randm') is suggested, a mere shared syllable ('nope', 'openai') is not
            close = difflib.get_close_matches(bare, self.names(kind), n=1, cutoff=0.7)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UnknownComponentError(
                f"unknown {label} '{name}'{hint}; available: {available}. "
                f"Run 'spl plugins' to see what each installed plug-in provides.")
        if len(infos) > 1:
            who = " and ".join(f"{i.package} (plug-in '{i.plugin}')" for i in infos)
            raise PluginError(f"{label} '{name}' is registered by both {who}; uninstall one or "
                              f"set SPL_DISABLE_PLUGINS to the plug-in you do not want.")
        return infos[0]

    def get(self, kind: str, name: str) -> type:
        """The class registered as ``name`` for ``kind``."""
        return self.info(kind, name).cls

    # typed accessors, so call sites read plugins.loss_term("spl")
    def loss_term(self, name: str) -> type[LossTerm]:
        """The loss-term class registered as ``name``."""
        return self.get("loss", name)

    def backbone(self, name: str) -> type[Backbone]:
        """The backbone class registered as ``name``."""
        return self.get("backbone", name)

    def attention_controller(self, name: str) -> type[AttentionController]:
        """The attention-controller class registered as ``name``."""
        return self.get("attention", name)

    def mask_extractor(self, name: str) -> type[MaskExtractor]:
        """The mask-extractor class registered as ``name``."""
        return self.get("mask-extractor", name)

    def post_processor(self, name: str) -> type[PostProcessor]:
        """The post-processor class registered as ``name``."""
        return self.get("post-processor", name)

    def harmonizer(self, name: str) -> type[Harmonizer]:
        """The harmonizer class registered as ``name``."""
        return self.get("harmonizer", name)

    def edit_method(self, name: str) -> type[EditMethod]:
        """The edit-method class registered as ``name``."""
        return self.get("method", name)

    # ------------------------------------------------------------------ listing
    def listing(self) -> list[dict[str, Any]]:
        """One record per component: name, kind, summary, plug-in, package and version."""
        rows = []
        for names in self.registry.values():
            for name in sorted(names):
                for i in names[name]:
                    rows.append({"name": i.name, "kind": i.kind, "summary": i.summary,
                                 "plugin": i.plugin, "package": i.package, "version": i.version,
                                 "options": i.options_schema})
        return rows

    def describe(self, component: object) -> str:
        """``loss term 'spl' (plug-in 'losses', package spl-sdk)`` for a component or its class."""
        cls = component if isinstance(component, type) else type(component)
        for kind, names in self.registry.items():
            for infos in names.values():
                for i in infos:
                    if i.cls is cls:
                        return f"{KIND_LABEL[kind]} '{i.name}' (plug-in '{i.plugin}', package {i.package})"
        return f"component {cls.__module__}.{cls.__qualname__}"

    def call(self, component: object, method: str, *args: Any,
             check: Callable[[Any], str | None] | None = None, **kwargs: Any) -> Any:
        """``component.method(*args, **kwargs)``; a failure or a wrong output becomes one line naming it.

        ``check(output)`` returns what is wrong with the output (e.g. "a loss of shape
        (1, 3, 8, 8) (expected a scalar)") or None. SplError (Canceled included) passes through.
        """
        try:
            out = getattr(component, method)(*args, **kwargs)
        except SplError:
            raise
        except Exception as exc:
            if type(exc).__name__ == "OutOfMemoryError":  # the device's fault, reported by the editor
                raise
            raise PluginError(f"{self.describe(component)} failed in {method}(): "
                              f"{type(exc).__name__}: {exc}") from exc
        problem = check(out) if check is not None else None
        if problem:
            raise PluginError(f"{self.describe(component)} returned {problem} from {method}(); "
                              f"fix the plug-in or choose another component.")
        return out

    def plugin_names(self) -> list[str]:
        """Names of the registered plug-ins."""
        return sorted(name for name, _ in self.pm.list_name_plugin())


def class_problem(cls: object, kind: str) -> str | None:
    """What makes ``cls`` unfit to register as a component of ``kind`` (None when it is fit)."""
    base = KIND_BASES[kind]
    label = KIND_LABEL[kind]
    if not isinstance(cls, type):
        if isinstance(cls, Component):
            return (f"an instance of {type(cls).__name__} as {a(label)}; register the class itself "
                    f"(register({type(cls).__name__}))")
        return f"{cls!r} as {a(label)}, but it is not a class"
    if not issubclass(cls, base):
        other = next((KIND_LABEL[k] for k, b in KIND_BASES.items() if issubclass(cls, b)), None)
        what = f"{a(other)}: register it with {HOOK_OF_KIND[_kind_of(other)]}" if other else \
            f"not a subclass of spl_sdk.components.{base.__name__}"
        return f"{cls.__name__} as {a(label)}, but it is {what}"
    if not getattr(cls, "name", ""):
        return f"{cls.__name__} as {a(label)} without a name; set the class attribute name = \"...\""
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        return f"{label} '{cls.name}' ({cls.__name__}) without its abstract method(s) {missing}; implement them"
    problem = options_problem(cls) or method_problem(cls, base)
    return f"{label} '{cls.name}' ({cls.__name__}), but {problem}" if problem else None


def _hook_problem(function: Callable[..., Any], hook: str) -> str | None:
    """Why a ``@hookimpl`` function for ``hook`` fits no hook spec (unknown name or arguments), or None."""
    spec = getattr(hookspecs, hook, None)
    if not hook.startswith("spl_register_") or spec is None:
        close = difflib.get_close_matches(hook, HOOK_OF_KIND.values(), n=1)
        return "is not an spl-sdk hook" + (f" (did you mean {close[0]}?)" if close else "")
    allowed = set(inspect.signature(spec).parameters)
    extra = sorted(set(inspect.signature(function).parameters) - allowed)
    if extra:
        return (f"takes {', '.join(repr(e) for e in extra)}, which the hook does not pass (it passes "
                f"only {', '.join(sorted(allowed))})")
    return None


def _would_register(function: Callable[..., Any]) -> list[str]:
    """``["loss term 'a'", ...]``: what a skipped hook would register (empty when it cannot tell)."""
    found: list[object] = []
    try:
        function(register=found.append)
    except Exception:  # noqa: BLE001 - a hook that cannot even run names nothing
        return []
    out = []
    for cls in found:
        kind = next((k for k, b in KIND_BASES.items() if isinstance(cls, type) and issubclass(cls, b)), None)
        label = KIND_LABEL[kind] if kind else "component"
        out.append(f"{label} '{getattr(cls, 'name', '') or getattr(cls, '__name__', cls)}'")
    return out


def _kind_of(label: str) -> str:
    """The kind whose label is ``label``."""
    return next(k for k, v in KIND_LABEL.items() if v == label)


def _nothing_registered(name: str, dist: str, module: object) -> str:
    """The warning for an entry-point module without any hook implementation."""
    unmarked = sorted(n for n in dir(module) if n.startswith("spl_register_"))
    hint = (f"its function(s) {', '.join(unmarked)} lack the @hookimpl decorator "
            f"(from spl_sdk import hookimpl)") if unmarked else \
        "it has no @hookimpl function (from spl_sdk import hookimpl)"
    return f"plug-in '{name}' from package {dist} registers nothing: {hint}."


def get_plugins(**kwargs: Any) -> Plugins:
    """Build a fresh plug-in manager with the installed plug-ins (the CLI builds one per run)."""
    return Plugins(**kwargs)
