"""The plug-in manager: inline registration, broken and clashing plug-ins, typos, env filters."""

from __future__ import annotations

import importlib
import types
import warnings
from dataclasses import dataclass, field

import pytest
import torch

import spl_sdk.plugins
from spl_sdk import hookimpl
from spl_sdk.components import LossTerm
from spl_sdk.errors import PluginError, UnknownComponentError
from spl_sdk.plugins import Plugins, PluginWarning


def _loss(name: str, doc: str = "A test loss.") -> type[LossTerm]:
    def value(self: LossTerm, s: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return ((s - e) ** 2).mean()

    return type(f"Loss_{name}", (LossTerm,), {"name": name, "__doc__": doc, "value": value})


def _plugin(module_name: str, *names: str) -> types.ModuleType:
    """A module registering one loss term per name, as a plug-in package's __init__ would."""
    module = types.ModuleType(module_name)
    classes = [_loss(n, f"Loss {n} from {module_name}.") for n in names]

    @hookimpl
    def spl_register_loss_terms(register):
        for cls in classes:
            register(cls)

    module.spl_register_loss_terms = spl_register_loss_terms
    return module


@dataclass
class FakeDist:
    name: str
    version: str = "1.0"


@dataclass
class FakeEntryPoint:
    """Stands in for importlib.metadata.EntryPoint: a name, its distribution and load()."""

    name: str
    target: types.ModuleType | str  # a module, or a module path to import
    dist: FakeDist = field(default_factory=lambda: FakeDist("pkg"))

    def load(self) -> types.ModuleType:
        return importlib.import_module(self.target) if isinstance(self.target, str) else self.target


@pytest.fixture
def entry_points(monkeypatch: pytest.MonkeyPatch):
    """Replace the installed entry points with the given fake ones."""
    def install(*eps: FakeEntryPoint) -> None:
        monkeypatch.setattr(spl_sdk.plugins.importlib.metadata, "entry_points",
                            lambda group: list(eps) if group == "spl_sdk" else [])
    return install


def _quiet(**kwargs: object) -> Plugins:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        plugins = Plugins(**kwargs)
        plugins.registry  # noqa: B018 - collect, reporting clashes
    return plugins


def test_inline_registration_without_entry_points() -> None:
    plugins = Plugins(load_entrypoints=False)
    assert plugins.names("loss") == []
    plugins.register(_plugin("my_losses", "alpha", "beta"), name="mine", package="my-pkg", version="2.0")
    assert plugins.names("loss") == ["alpha", "beta"]
    cls = plugins.loss_term("alpha")
    assert issubclass(cls, LossTerm) and cls.name == "alpha"
    info = plugins.info("loss", "beta")
    assert (info.plugin, info.package, info.version) == ("mine", "my-pkg", "2.0")
    rows = plugins.listing()
    assert {r["name"] for r in rows} == {"alpha", "beta"}
    assert rows[0] == {"name": "alpha", "kind": "loss", "summary": "Loss alpha from my_losses.",
                       "plugin": "mine", "package": "my-pkg", "version": "2.0",
                       "options": {"additionalProperties": False, "properties": {},
                                   "title": "ComponentOptions", "type": "object"}}
    assert float(cls(weight=2.0)(torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4))) == pytest.approx(0.5)


def test_unknown_name_lists_the_available_ones() -> None:
    plugins = Plugins(load_entrypoints=False)
    plugins.register(_plugin("m", "alpha", "beta"), name="m")
    with pytest.raises(UnknownComponentError, match="unknown loss term 'gamma'; available: alpha, beta"):
        plugins.loss_term("gamma")
    with pytest.raises(UnknownComponentError, match="none installed"):
        plugins.backbone("anything")


def test_plugin_that_fails_to_import_warns_and_others_work(entry_points) -> None:
    entry_points(FakeEntryPoint("broken", "spl_no_such_module_xyz", FakeDist("spl-broken", "0.3")),
                 FakeEntryPoint("good", _plugin("good_mod", "alpha"), FakeDist("spl-good")))
    with pytest.warns(PluginWarning, match="spl-broken 0.3 failed to import"):
        plugins = Plugins(env={})
    assert plugins.names("loss") == ["alpha"]
    assert any("spl-broken" in e and "SPL_DISABLE_PLUGINS=broken" in e for e in plugins.load_errors)


def test_same_name_from_two_plugins_warns_and_lookup_names_both(entry_points) -> None:
    entry_points(FakeEntryPoint("one", _plugin("mod_one", "dup", "alpha"), FakeDist("pkg-one")),
                 FakeEntryPoint("two", _plugin("mod_two", "dup"), FakeDist("pkg-two")))
    plugins = Plugins(env={})
    with pytest.warns(PluginWarning, match="'dup' is registered by both pkg-.* and pkg-"):
        plugins.registry  # noqa: B018
    with pytest.raises(PluginError) as info:
        plugins.info("loss", "dup")
    assert "pkg-one" in str(info.value) and "pkg-two" in str(info.value)
    assert plugins.loss_term("alpha").name == "alpha"  # the rest is unaffected


def test_misspelt_hook_raises_naming_plugin_and_hook() -> None:
    module = types.ModuleType("typo_mod")

    @hookimpl
    def spl_register_los_terms(register):
        register(_loss("x"))

    module.spl_register_los_terms = spl_register_los_terms
    plugins = Plugins(load_entrypoints=False)
    with pytest.raises(PluginError) as info:
        plugins.register(module, name="typo-plugin")
    assert "typo-plugin" in str(info.value) and "spl_register_los_terms" in str(info.value)
    assert plugins.plugin_names() == []  # not left half-registered


def test_wrong_hook_arguments_raise() -> None:
    module = types.ModuleType("args_mod")

    @hookimpl
    def spl_register_loss_terms(register, extra):
        pass

    module.spl_register_loss_terms = spl_register_loss_terms
    with pytest.raises(PluginError, match="args-plugin"):
        Plugins(load_entrypoints=False).register(module, name="args-plugin")


def test_misspelt_hook_in_an_installed_plugin_only_warns(entry_points) -> None:
    module = types.ModuleType("typo_ep")

    @hookimpl
    def spl_register_los_terms(register):
        pass

    module.spl_register_los_terms = spl_register_los_terms
    entry_points(FakeEntryPoint("typo", module, FakeDist("spl-typo")),
                 FakeEntryPoint("good", _plugin("good2", "alpha"), FakeDist("spl-good")))
    plugins = _quiet(env={})
    assert plugins.names("loss") == ["alpha"]
    assert any("spl_register_los_terms" in e and "spl-typo" in e for e in plugins.load_errors)


def test_registering_a_wrong_class_warns_and_keeps_the_rest() -> None:
    module = types.ModuleType("wrong_mod")

    @hookimpl
    def spl_register_loss_terms(register):
        register(int)

    module.spl_register_loss_terms = spl_register_loss_terms
    plugins = Plugins(load_entrypoints=False)
    plugins.register(module, name="wrong", package="pkg-wrong")
    plugins.register(_plugin("ok_mod", "alpha"), name="ok")
    with pytest.warns(PluginWarning, match="'wrong' \\(pkg-wrong\\) registered int as a loss term, but it is not a subclass"):
        assert plugins.names("loss") == ["alpha"]


def test_two_packages_with_one_entry_point_name_warn(entry_points) -> None:
    entry_points(FakeEntryPoint("losses", _plugin("first", "alpha"), FakeDist("pkg-a")),
                 FakeEntryPoint("losses", _plugin("second", "beta"), FakeDist("pkg-b")))
    plugins = _quiet(env={})
    assert plugins.names("loss") == ["alpha"]
    assert any("pkg-b" in e and "pkg-a" in e for e in plugins.load_errors)


@pytest.mark.parametrize("env, expected", [
    ({}, ["alpha", "beta", "gamma"]),
    ({"SPL_LOAD_PLUGINS": "one"}, ["alpha"]),
    ({"SPL_LOAD_PLUGINS": "one, pkg-three"}, ["alpha", "gamma"]),  # package names work too
    ({"SPL_DISABLE_PLUGINS": "two"}, ["alpha", "gamma"]),
    ({"SPL_DISABLE_PLUGINS": "pkg-one,two"}, ["gamma"]),
    ({"SPL_LOAD_PLUGINS": "one,two", "SPL_DISABLE_PLUGINS": "two"}, ["alpha"]),
    ({"SPL_LOAD_PLUGINS": ""}, ["alpha", "beta", "gamma"]),  # empty means unset
])
def test_env_allow_and_deny_lists(entry_points, env: dict[str, str], expected: list[str]) -> None:
    entry_points(FakeEntryPoint("one", _plugin("m1", "alpha"), FakeDist("pkg-one")),
                 FakeEntryPoint("two", _plugin("m2", "beta"), FakeDist("pkg-two")),
                 FakeEntryPoint("three", _plugin("m3", "gamma"), FakeDist("pkg-three")))
    assert _quiet(env=env).names("loss") == expected


def test_installed_builtins_register_the_four_loss_terms(plugins: Plugins) -> None:
    assert {"spl", "cpl", "l1", "mse"} <= set(plugins.names("loss"))
    assert plugins.info("loss", "spl").package == "spl-sdk"


def test_unknown_names_suggest_the_closest_and_sentences_use_an_before_vowels() -> None:
    from spl_sdk.text import a

    plugins = Plugins(load_entrypoints=True, env={})
    with pytest.raises(UnknownComponentError, match=r"unknown backbone 'tiny-randm-sd15' \(did you mean 'tiny-random-sd15'\?\)"):
        plugins.backbone("tiny-randm-sd15")
    with pytest.raises(UnknownComponentError) as info:  # a shared syllable is no misspelling
        plugins.harmonizer("nope")
    assert "did you mean" not in str(info.value)
    assert a("attention controller") == "an attention controller" and a("loss term") == "a loss term"
    assert a("edit method") == "an edit method"
