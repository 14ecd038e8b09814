"""tox.ini: `tox -e demo` then `tox -e test` installs the heavy environment once."""

from __future__ import annotations

import configparser
from pathlib import Path

TOX = Path(__file__).resolve().parents[1] / "tox.ini"


def test_demo_runs_in_the_test_environment_instead_of_sharing_its_folder() -> None:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(TOX)
    demo, base = ini["testenv:demo"], ini["testenv"]
    # tox 4 recreates an env_dir whose recorded env name differs: demo must not reuse test's folder
    assert demo["env_dir"].strip() != base["env_dir"].strip()
    assert demo.get("skip_install", "").strip() == "true" and not demo.get("deps", "").strip()
    assert "tox -e test --notest" in demo["commands_pre"]
    commands = [c.strip() for c in demo["commands"].strip().splitlines()]
    assert commands and all(c.startswith("tox exec -e test --skip-pkg-install -- spl ") for c in commands)
    assert "env_dir" not in ini["testenv:test"]  # test keeps the shared [testenv] folder
