"""Plug-in mistakes are named: registration checks, modules that register nothing, run-time faults, clashes."""

from __future__ import annotations

import types
import warnings

import pytest
import torch
from click.testing import CliRunner
from test_plugin_manager import FakeDist, FakeEntryPoint

import spl_sdk.checks
import spl_sdk.plugins
from spl_sdk import hookimpl
from spl_sdk.components import LossTerm, MaskExtractor, PostProcessor
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
        plugins.call(BoomPost(None), "process", x, x, [])
    with pytest.raises(PluginError, match="mask extractor 'wrongmask'.*mask-pkg.*shape \\(1, 3, 8, 8\\)"):
        plugins.call(WrongMask(None), "extract", None, check=spl_sdk.checks.mask_map)


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
