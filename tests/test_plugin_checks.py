"""Plug-in mistakes are named: registration checks, modules that register nothing, run-time faults, clashes."""

from __future__ import annotations

import types
import warnings

import pydantic
import pytest
import torch
from click.testing import CliRunner
from test_plugin_manager import FakeDist, FakeEntryPoint

import spl_sdk.checks
import spl_sdk.plugins
from spl_sdk import hookimpl
from spl_sdk.components import (
    Backbone,
    ComponentOptions,
    Harmonizer,
    LossTerm,
    MaskExtractor,
    PostProcessor,
)
from spl_sdk.errors import PluginError
from spl_sdk.plugins import Plugins, PluginWarning


def _module(hook: str, *objects: object) -> types.ModuleType:
    module = types.ModuleType("third_party")

    @hookimpl(specname=hook)
    def impl(register):
        for obj in objects:
            register(obj)

    setattr(module, hook, impl)
    return module


class GoodLoss(LossTerm):
    """Squared difference."""

    name = "good"

    def value(self, s: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return ((s - e) ** 2).mean()


class NoValue(LossTerm):
    """Forgot value()."""

    name = "novalue"


class Nameless(LossTerm):
    """No name."""

    def value(self, s: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return s.mean()


class MapLoss(LossTerm):
    """Returns a map instead of a scalar."""

    name = "maploss"

    def value(self, s: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return (s - e) ** 2


class BoomPost(PostProcessor):
    """Raises."""

    name = "boom"

    def process(self, source, edited, terms, callback=None):
        raise ValueError("kaboom")


class WrongMask(MaskExtractor):
    """A mask with three channels."""

    name = "wrongmask"
    needs_first_pass = False

    def extract(self, context):
        return torch.ones(1, 3, 8, 8)


@pytest.mark.parametrize(("obj", "reason"), [
    (NoValue, "without its abstract method(s) value"),
    (GoodLoss(), "an instance of GoodLoss as a loss term; register the class itself"),
    (Nameless, "Nameless as a loss term without a name"),
    (BoomPost, "it is a post-processor: register it with spl_register_post_processors"),
])
def test_bad_registrations_are_reported_with_their_reason(obj: object, reason: str) -> None:
    plugins = Plugins(load_entrypoints=False)
    plugins.register(_module("spl_register_loss_terms", obj, GoodLoss), name="tp", package="tp-pkg")
    with pytest.warns(PluginWarning) as caught:
        assert plugins.names("loss") == ["good"]  # the good class of the same plug-in stays
    assert any(reason in str(w.message) and "tp-pkg" in str(w.message) for w in caught), \
        [str(w.message) for w in caught]


def test_an_entry_point_that_registers_nothing_warns_about_hookimpl(monkeypatch) -> None:
    module = types.ModuleType("forgot")

    def spl_register_loss_terms(register):  # no @hookimpl
        register(GoodLoss)

    module.spl_register_loss_terms = spl_register_loss_terms
    monkeypatch.setattr(spl_sdk.plugins.importlib.metadata, "entry_points",
                        lambda group: [FakeEntryPoint("forgot", module, FakeDist("forgot-pkg"))])
    with pytest.warns(PluginWarning, match="'forgot' from package forgot-pkg registers nothing: its "
                                           "function\\(s\\) spl_register_loss_terms lack the @hookimpl"):
        Plugins(env={})


def test_run_time_faults_name_the_plugin_package_and_method() -> None:
    plugins = Plugins(load_entrypoints=False)
    plugins.register(_module("spl_register_loss_terms", MapLoss), name="maps", package="maps-pkg")
    plugins.register(_module("spl_register_post_processors", BoomPost), name="booms", package="boom-pkg")
    plugins.register(_module("spl_register_mask_extractors", WrongMask), name="masks", package="mask-pkg")
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(PluginError) as loss:
        plugins.call(MapLoss(), "__call__", x, x, check=spl_sdk.checks.scalar)
    assert str(loss.value) == ("loss term 'maploss' (plug-in 'maps', package maps-pkg) returned a loss of "
                               "shape (1, 3, 8, 8) (expected a scalar) from __call__(); fix the plug-in "
                               "or choose another component.")
    with pytest.raises(PluginError, match="post-processor 'boom' \\(plug-in 'booms', package boom-pkg\\) "
                                          "failed in process\\(\\): ValueError: kaboom"):
        plugins.call(BoomPost(), "process", x, x, [])
    with pytest.raises(PluginError, match="mask extractor 'wrongmask'.*mask-pkg.*shape \\(1, 3, 8, 8\\)"):
        plugins.call(WrongMask(), "extract", None, check=spl_sdk.checks.mask_map)


def test_refine_names_a_loss_returning_a_map(tmp_path, example_image, monkeypatch) -> None:
    from spl_sdk.cli import main

    real = spl_sdk.plugins.Plugins._load_entrypoints

    def with_maploss(self: Plugins) -> None:
        real(self)
        self.register(_module("spl_register_loss_terms", MapLoss), name="maps", package="maps-pkg")

    monkeypatch.setattr(spl_sdk.plugins.Plugins, "_load_entrypoints", with_maploss)
    photo = tmp_path / "p.png"
    example_image.resize((32, 32)).save(photo)
    run = CliRunner().invoke(main, ["refine", str(photo), str(photo), "-o", str(tmp_path / "o.png"),
                                    "--structure-loss", "maploss", "--color-loss", "none", "-q"])
    assert run.exit_code == 1
    assert "Error: loss term 'maploss' (plug-in 'maps', package maps-pkg) returned a loss of shape" in run.output
    assert "Traceback" not in run.output


class Impostor(GoodLoss):
    """A third party's loss that takes a built-in's name."""

    name = "spl"


@pytest.fixture
def impostor(monkeypatch) -> None:
    """Installed plug-ins plus package 'imp-pkg' registering :class:`Impostor` as 'spl'."""
    real = spl_sdk.plugins.Plugins._load_entrypoints

    def with_impostor(self: Plugins) -> None:
        real(self)
        self.register(_module("spl_register_loss_terms", Impostor), name="imp", package="imp-pkg")

    monkeypatch.setattr(spl_sdk.plugins.Plugins, "_load_entrypoints", with_impostor)


def test_a_third_party_loss_named_like_a_builtin_keeps_the_builtin(impostor) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugins = Plugins(env={})
        assert plugins.loss_term("spl") is not Impostor
        assert plugins.loss_term("imp-pkg:spl") is Impostor
        assert plugins.loss_term("spl-sdk:spl") is plugins.loss_term("spl")
        plugins.loss_term("spl")
    clash = [w for w in caught if "has the name of a built-in" in str(w.message)]
    assert len(clash) == 1 and "'imp-pkg:spl'" in str(clash[0].message)


def test_a_cli_edit_with_a_clashing_loss_runs_and_warns_once(tmp_path, example_image, impostor) -> None:
    from spl_sdk.cli import main

    photo = tmp_path / "p.png"
    example_image.resize((32, 32)).save(photo)
    run = CliRunner().invoke(main, ["refine", str(photo), str(photo), "-o", str(tmp_path / "o.png"),
                                    "--iterations", "1", "-q"])
    assert run.exit_code == 0, run.output
    assert run.output.count("has the name of a built-in") == 1, run.output


# ---------------------------------------------------------------- options and signatures at registration
class PlainOptions(GoodLoss):
    """Options from pydantic's BaseModel: a misspelt option would pass unnoticed."""

    name = "plain"

    class Options(pydantic.BaseModel):
        level: float = 0.5


class NoDefault(GoodLoss):
    """An option without a default (spl plugins used to print default "PydanticUndefined")."""

    name = "nodefault"

    class Options(ComponentOptions):
        level: float = pydantic.Field(description="A gray level.")


class ShortProcess(PostProcessor):
    """process() without the terms parameter."""

    name = "short"

    def process(self, source, edited, callback=None):
        return edited


class OneImageLoss(LossTerm):
    """value() with one image."""

    name = "oneimage"

    def value(self, source01):
        return source01.mean()


class StaticLoad(Backbone):
    """load() as an instance method."""

    name = "staticload"

    def load(self, model=None):  # not a classmethod
        return self

    encode_prompts = predict = timesteps = encode_image = decode_latents = lambda self, *a, **k: None


class OwnInitHarmonizer(Harmonizer):
    """A harmonizer whose constructor takes options= only (not the older keyword fields)."""

    name = "owninit"

    def __init__(self, options=None):
        super().__init__(options)

    def describe(self, composite, mask, object_word=None):
        return None


class LegacyPost(PostProcessor):
    """process() with progress= instead of callback=, as written before callback existed."""

    name = "legacy"

    def process(self, source, edited, terms, progress=None):
        return edited


@pytest.mark.parametrize(("hook", "obj", "reason"), [
    ("spl_register_loss_terms", PlainOptions,
     "loss term 'plain' (PlainOptions), but its Options is a plain pydantic BaseModel, which would let "
     "misspelt options pass unnoticed; derive it from spl_sdk.components.ComponentOptions"),
    ("spl_register_loss_terms", NoDefault,
     "loss term 'nodefault' (NoDefault), but its option 'level' has no default; give each a default"),
    ("spl_register_post_processors", ShortProcess,
     "post-processor 'short' (ShortProcess), but its method process(self, source, edited, callback=None) "
     "does not match the contract process(self, source, edited, terms, callback=None) (its parameter 3 "
     "is 'callback' where the contract has 'terms')"),
    ("spl_register_loss_terms", OneImageLoss,
     "its method value(self, source01) does not match the contract value(self, source01, edited01) "
     "(it lacks the parameter 'edited01')"),
    ("spl_register_backbones", StaticLoad, "its load() is not a classmethod; declare it @classmethod def "
                                           "load(cls, model=None, *, device='auto'"),
])
def test_options_and_signatures_are_checked_when_a_class_registers(hook: str, obj: type, reason: str) -> None:
    plugins = Plugins(load_entrypoints=False)
    plugins.register(_module(hook, obj), name="tp", package="tp-pkg")
    kind = next(k for k, h in spl_sdk.plugins.HOOK_OF_KIND.items() if h == hook)
    with pytest.warns(PluginWarning) as caught:
        assert plugins.names(kind) == []
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and messages[0].startswith("plug-in 'tp' (tp-pkg) registered ")
    assert reason in messages[0] and messages[0].endswith("; it is unavailable."), messages


def test_compatible_signatures_and_every_builtin_pass_the_checks(plugins: Plugins) -> None:
    local = Plugins(load_entrypoints=False)
    local.register(_module("spl_register_post_processors", LegacyPost, BoomPost), name="ok")
    local.register(_module("spl_register_harmonizers", OwnInitHarmonizer), name="ok2")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginWarning)
        assert local.names("post-processor") == ["boom", "legacy"]
        assert local.names("harmonizer") == ["owninit"]
        for kind, names in plugins.registry.items():
            for name in names:
                info = plugins.info(kind, name)
                problem = spl_sdk.plugins.class_problem(info.cls, kind)
                assert problem is None, (kind, name, problem)


# ---------------------------------------------------------------- one bad hook disables that hook only
def test_a_misspelt_hook_disables_only_that_hook_and_names_what_is_lost(monkeypatch) -> None:
    module = types.ModuleType("half_typo")

    @hookimpl
    def spl_register_los_terms(register):
        register(GoodLoss)

    @hookimpl
    def spl_register_post_processors(register):
        register(LegacyPost)

    module.spl_register_los_terms = spl_register_los_terms
    module.spl_register_post_processors = spl_register_post_processors
    monkeypatch.setattr(spl_sdk.plugins.importlib.metadata, "entry_points",
                        lambda group: [FakeEntryPoint("half", module, FakeDist("half-pkg", "0.2"))])
    with pytest.warns(PluginWarning) as caught:
        plugins = Plugins(env={})
    assert plugins.names("post-processor") == ["legacy"]  # the good hook of the same package still works
    assert plugins.names("loss") == []
    assert [str(w.message) for w in caught] == [
        "plug-in 'half' from package half-pkg 0.2: hook spl_register_los_terms is not an spl-sdk hook "
        "(did you mean spl_register_loss_terms?), so that hook is skipped and loss term 'good' is "
        "unavailable; its other hook (spl_register_post_processors) still registers components."]
    assert plugins.describe(LegacyPost) == "post-processor 'legacy' (plug-in 'half', package half-pkg)"


def test_a_hook_with_unknown_arguments_is_skipped_alone(monkeypatch) -> None:
    module = types.ModuleType("bad_args")

    @hookimpl
    def spl_register_loss_terms(register, extra):
        register(GoodLoss)

    @hookimpl
    def spl_register_post_processors(register):
        register(LegacyPost)

    module.spl_register_loss_terms = spl_register_loss_terms
    module.spl_register_post_processors = spl_register_post_processors
    monkeypatch.setattr(spl_sdk.plugins.importlib.metadata, "entry_points",
                        lambda group: [FakeEntryPoint("args", module, FakeDist("args-pkg"))])
    with pytest.warns(PluginWarning, match="hook spl_register_loss_terms takes 'extra', which the hook "
                                           "does not pass \\(it passes only register\\), so that hook is "
                                           "skipped and whatever it registers is unavailable"):
        plugins = Plugins(env={})
    assert plugins.names("post-processor") == ["legacy"]


class BadProfile(GoodLoss):
    """A profile that sets an option the class does not have."""

    name = "badprofile"
    profile_options = {"paper": {"chorma": "kornia"}}


def test_profile_options_that_are_not_options_are_refused_at_registration() -> None:
    plugins = Plugins(load_entrypoints=False)
    plugins.register(_module("spl_register_loss_terms", BadProfile), name="tp", package="tp-pkg")
    with pytest.warns(PluginWarning, match="loss term 'badprofile' \\(BadProfile\\), but its profile_options "
                                           "for profile 'paper' are not valid options"):
        assert plugins.names("loss") == []
