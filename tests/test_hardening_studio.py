"""A studio served beyond localhost: model folders on the server's disk are off unless the operator
enables them; Hub ids still work. (The upload pixel limit is in test_hardening_memory.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_app import STUDIO, png, settle

from spl_apps import resources
from spl_sdk.errors import ConfigError


@pytest.fixture(autouse=True)
def _served(monkeypatch):
    monkeypatch.delenv("SPL_STUDIO_MODEL_FOLDERS", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("model", ["/etc", "../models/sd", "~/weights", "C:\\\\models", "a/b/c",
                                   "./sd15", "C:/models"])
def test_paths_are_refused_by_default(model):
    with pytest.raises(ConfigError, match="does not load model folders from the server's disk"):
        resources.check_model_choice(model)


def test_an_existing_relative_folder_is_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights").mkdir()
    with pytest.raises(ConfigError):
        resources.check_model_choice("weights")


@pytest.mark.parametrize("model", [None, "", "SimianLuo/LCM_Dreamshaper_v7", "runwayml/sd-v1.5"])
def test_hub_ids_pass(model):
    resources.check_model_choice(model)


def test_the_operator_can_allow_folders(monkeypatch):
    monkeypatch.setenv("SPL_STUDIO_MODEL_FOLDERS", "1")
    resources.check_model_choice("/srv/models/sd15")


def test_the_app_refuses_a_typed_folder_and_offers_none(tmp_path: Path):
    at = AppTest.from_file(str(STUDIO), default_timeout=300).run()
    at.file_uploader(key="edit.upload").set_value(("p.png", png(), "image/png"))
    at = settle(at, {"edit.source_prompt": "a photo", "edit.target_prompt": "a red photo",
                     "cfg.model": str(tmp_path)})
    at.button(key="edit.run").click().run()
    assert not at.exception
    assert any("does not load model folders" in e.value for e in at.error)
    at = settle(at, {"cfg.model": ""})
    at.button(key="edit.run").click().run()  # the default backbone: no weights here
    assert at.error and not [w for w in at.text_input if w.key == "edit.folder"]


def test_spl_app_allows_folders_on_loopback_only():
    from spl_sdk.cli.app import studio_env

    assert studio_env("127.0.0.1", {})["SPL_STUDIO_MODEL_FOLDERS"] == "1"  # the one local user
    assert "SPL_STUDIO_MODEL_FOLDERS" not in studio_env("0.0.0.0", {})  # served: off by default
    assert studio_env("0.0.0.0", {"SPL_STUDIO_MODEL_FOLDERS": "1"})["SPL_STUDIO_MODEL_FOLDERS"] == "1"
    assert studio_env("localhost", {"SPL_STUDIO_MODEL_FOLDERS": "0"})["SPL_STUDIO_MODEL_FOLDERS"] == "0"
