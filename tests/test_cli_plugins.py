"""``spl plugins`` and the third-party example package ``spl-example-tv`` (installed by CI)."""

from __future__ import annotations

import importlib.metadata
import json
import re
import sys
import types
from pathlib import Path

import pytest
from clash_plugin import clash_module
from click.testing import CliRunner, Result
from PIL import Image, ImageFilter

import spl_sdk.plugins
from spl_sdk import hookimpl
from spl_sdk.cli import main
from spl_sdk.components import LossTerm
from spl_sdk.imageio import read_metadata

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "plugins" / "examples" / "spl-example-tv"
INSTALL = f"pip install -e {EXAMPLE.relative_to(ROOT)} --no-deps"


def spl(*args: object, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


@pytest.fixture
def example_installed() -> None:
    """Fail (not skip) with the install command when the example plug-in is missing."""
    eps = [ep for ep in importlib.metadata.entry_points(group="spl_sdk") if ep.name == "tv"]
    if not eps:
        pytest.fail(f"the example plug-in spl-example-tv is not installed; run '{INSTALL}' "
                    f"from the repository root (CI and tox do this).")


def test_json_lists_every_component_with_its_package() -> None:
    result = spl("plugins", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {"name", "kind", "package", "version", "summary", "plugin"} <= set(rows[0])
    by_name = {(r["kind"], r["name"]): r for r in rows}
    for name in ("spl", "cpl", "l1", "mse"):
        row = by_name[("loss", name)]
        assert row["package"] == "spl-sdk" and row["version"] == importlib.metadata.version("spl-sdk")
        assert row["summary"]


def test_plain_table_has_the_columns_and_rows() -> None:
    result = spl("plugins")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "PACKAGE", "VERSION", "SUMMARY"]
    spl_row = next(line for line in lines if line.startswith("spl "))
    assert re.match(r"spl\s+loss\s+spl-sdk\s+\S+\s+Structure", spl_row), spl_row


def test_example_plugin_is_listed(example_installed: None) -> None:
    rows = json.loads(spl("plugins", "--json").stdout)
    tv = [r for r in rows if r["name"] == "tv"]
    assert len(tv) == 1
    assert (tv[0]["kind"], tv[0]["package"], tv[0]["version"], tv[0]["plugin"]) == (
        "loss", "spl-example-tv", "0.1.0", "tv")
    assert "Total-variation" in tv[0]["summary"]


def test_example_plugin_can_be_disabled(example_installed: None) -> None:
    for value in ("tv", "spl-example-tv"):
        rows = json.loads(spl("plugins", "--json", env={"SPL_DISABLE_PLUGINS": value}).stdout)
        names = {r["name"] for r in rows}
        assert "tv" not in names and "spl" in names


def test_refine_uses_the_example_loss_by_name(example_installed: None, tmp_path: Path) -> None:
    with Image.open(ROOT / "apps" / "examples" / "woman.png") as img:
        src = img.convert("RGB").resize((96, 80))
    src.save(tmp_path / "src.png")
    src.filter(ImageFilter.GaussianBlur(2)).save(tmp_path / "edit.png")
    result = spl("refine", tmp_path / "src.png", tmp_path / "edit.png", "-o", tmp_path / "out.png",
                 "--structure-loss", "tv", "--iterations", 10)
    assert result.exit_code == 0, result.output
    before, after = map(float, re.search(r"loss before: (\S+), after: (\S+)", result.stdout).groups())
    assert after < before
    assert Image.open(tmp_path / "out.png").size == (96, 80)


class _EP:
    def __init__(self, name: str, target: str, dist: str) -> None:
        self.name, self.target = name, target
        self.dist = type("Dist", (), {"name": dist, "version": "9.9"})()

    def load(self) -> object:
        return importlib.import_module(self.target)


def _copycat_module() -> types.ModuleType:
    """A plug-in module that registers a second loss term named 'spl'."""
    module = types.ModuleType("spl_copycat")

    class CopySPL(LossTerm):
        """A clashing copy."""

        name = "spl"

        def value(self, source01, edited01):
            return (source01 - edited01).abs().mean()

    @hookimpl
    def spl_register_loss_terms(register):
        register(CopySPL)

    module.spl_register_loss_terms = spl_register_loss_terms
    return module


def test_load_problems_warn_on_stderr_without_failing(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "spl_copycat", _copycat_module())
    real = list(importlib.metadata.entry_points(group="spl_sdk"))
    fake = real + [_EP("broken", "spl_no_such_module_xyz", "spl-broken"),
                   _EP("copy", "spl_copycat", "spl-copycat")]
    monkeypatch.setattr(spl_sdk.plugins.importlib.metadata, "entry_points",
                        lambda group: fake if group == "spl_sdk" else [])
    result = spl("plugins", "--json")
    assert result.exit_code == 0
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]
    assert any("spl-broken" in w and "failed to import" in w for w in warnings), result.stderr
    assert any("'spl' of package spl-copycat has the name of a built-in" in w
               and "'spl-copycat:spl'" in w for w in warnings), result.stderr
    rows = json.loads(result.stdout)  # stdout stays clean JSON
    assert {r["package"] for r in rows if r["name"] == "spl"} == {"spl-sdk", "spl-copycat"}
    # the built-in keeps its name; the third party's stays reachable as package:name
    Image.new("RGB", (16, 12), (90, 60, 30)).save(tmp_path / "a.png")
    args = ["refine", tmp_path / "a.png", tmp_path / "a.png", "-o", tmp_path / "c.png", "--iterations", 2]
    assert spl(*args, "--structure-loss", "l1").exit_code == 0
    assert spl(*args, "--force").exit_code == 0
    other = spl(*args, "--force", "--structure-loss", "spl-copycat:spl")
    assert other.exit_code == 0, other.output
    assert read_metadata(tmp_path / "c.png")["config"]["structure_loss"] == "spl-copycat:spl"


@pytest.mark.parametrize(("backbone", "facts"), [
    ("lcm-dreamshaper-v7", ["Default model: SimianLuo/LCM_Dreamshaper_v7", "Family: sd15",
                            "default working size: 512 px", "Default method: infedit (steps 15, source / target "
                            "guidance 1 / 2)", "1.99 GiB of weights in 16-bit", "Needs: no extra"]),
    ("lcm-lora-sdxl", ["Family: sdxl", "Needs: pip install 'spl-sdk[lora]'"]),
    ("flux-kontext-dev", ["Default method: instruct (steps 28, guidance 3.5)", "31.4 GiB"]),
    ("tiny-random-sd15", ["Default model: none", "Memory: a few MB"])])
def test_plugins_backbone_says_what_a_first_run_needs(backbone: str, facts: list[str]) -> None:
    from spl_sdk.cli import main

    shown = CliRunner().invoke(main, ["plugins", backbone]).output
    for fact in facts:
        assert fact in shown, (fact, shown)


def test_infedit_is_one_component_and_its_controller_is_unified() -> None:
    # 0.1 gave the method and its attention controller one name; the controller is 'unified' now
    method = spl("plugins", "infedit")
    assert method.exit_code == 0 and "cross_replace" not in method.output
    assert [r["kind"] for r in [json.loads(spl("plugins", "infedit", "--json").output)]] == ["method"]
    shown = spl("plugins", "unified")
    assert shown.exit_code == 0, shown.output
    assert "--option unified.FIELD=VALUE" in shown.output
    for option in ("cross_replace", "self_replace", "blend_words_source", "blend_words_target"):
        assert f"  {option}  (" in shown.output
    assert spl("plugins", "attention/infedit").output == shown.output  # 0.1's KIND/NAME still finds it


def test_a_name_of_two_kinds_shows_each_component_with_its_kind_slash_name(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "spl_second_kind", clash_module("spl_second_kind"))
    fake = [*importlib.metadata.entry_points(group="spl_sdk"), _EP("second", "spl_second_kind", "spl-second")]
    monkeypatch.setattr(spl_sdk.plugins.importlib.metadata, "entry_points",
                        lambda group: fake if group == "spl_sdk" else [])
    shown = spl("plugins", "spl")
    assert shown.exit_code == 0, shown.output
    assert "--option loss/spl.FIELD=VALUE" in shown.output
    assert "--option mask-extractor/spl.FIELD=VALUE" in shown.output
    assert "  level  (" in shown.output and "  radius  (" in shown.output
    assert sorted(r["kind"] for r in json.loads(spl("plugins", "spl", "--json").output)) == \
        ["loss", "mask-extractor"]
