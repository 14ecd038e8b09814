"""Optional extras: a missing one is named in one line; listing plug-ins needs none of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from spl_sdk.cli import main
from spl_sdk.errors import SplError
from spl_sdk.extras import MissingExtraError, available, check, require

EXAMPLES = Path(__file__).resolve().parents[1] / "apps" / "examples"
STUDIO = Path(__file__).resolve().parents[1] / "apps" / "studio.py"


def hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``import module`` fail as if the package were not installed (None in sys.modules)."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_require_returns_the_module_or_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    assert require("json", "app").dumps(1) == "1"
    hide(monkeypatch, "openai")
    assert not available("openai")
    with pytest.raises(MissingExtraError) as caught:
        require("openai", "openai", "the openai harmonizer")
    assert isinstance(caught.value, SplError)
    assert str(caught.value) == "the openai harmonizer needs the 'openai' extra: pip install 'spl-sdk[openai]'"
    with pytest.raises(MissingExtraError, match=r"spl-sdk\[app\]"):
        check("streamlit_not_installed_here", "app", "spl app")


def test_spl_app_without_streamlit_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "streamlit")
    result = CliRunner().invoke(main, ["app", "--print-command"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["Error: spl app needs the 'app' extra: pip install 'spl-sdk[app]'"]


def test_openai_harmonizer_without_openai_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    result = CliRunner().invoke(main, ["harmonize", str(EXAMPLES / "old_man.png"), str(EXAMPLES / "old_man.png"),
                                       "--prompts-only", "--harmonizer", "openai"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: the openai harmonizer needs the 'openai' extra: pip install 'spl-sdk[openai]'"]


def test_plugins_are_listed_without_openai_and_streamlit() -> None:
    code = ("import sys\n"
            "for name in ('openai', 'streamlit', 'streamlit_drawable_canvas'): sys.modules[name] = None\n"
            "from spl_sdk.cli import main\n"
            "main(['plugins', '--json'])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    names = {(row["kind"], row["name"]) for row in json.loads(done.stdout)}
    assert {("harmonizer", "openai"), ("harmonizer", "offline")} <= names


def test_studio_falls_back_and_names_the_draw_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    hide(monkeypatch, "openai", "streamlit_drawable_canvas")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # a key alone no longer picks the openai harmonizer
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = AppTest.from_file(str(STUDIO), default_timeout=300).run()
    at.get_by_key("cfg.structure_area").set_value("masked")
    at = at.run()
    captions = [str(c.value) for c in at.caption]
    assert "Drawing a mask needs the 'draw' extra: pip install 'spl-sdk[draw]'" in captions
    assert "Draw" not in at.radio(key="edit.mask_source").options
    at.get_by_key("page").set_value("Harmonize")
    at = at.run()
    assert at.selectbox(key="harm.harmonizer").value == "offline"
    assert not at.exception, [e.value for e in at.exception]
