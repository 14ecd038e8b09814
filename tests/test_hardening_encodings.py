"""Config files that are not UTF-8 give one line; names the terminal cannot print come out escaped,
and terminal control sequences in names or model text are neutralized."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from spl_sdk.config import RefineConfig, build_config
from spl_sdk.errors import ConfigError
from spl_sdk.text import neutralize, printable


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spl_sdk.cli", *args], capture_output=True,
                          text=True, encoding="utf-8", errors="replace", timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".toml"])
def test_config_not_utf8_is_one_line(tmp_path: Path, suffix: str):
    path = tmp_path / f"c{suffix}"
    path.write_bytes(b'{"iterations": 5, "note": "caf\xe9"}' if suffix == ".json" else b"iterations: \xff\xfe")
    with pytest.raises(ConfigError, match="is not valid UTF-8 text .*save it as UTF-8"):
        build_config(RefineConfig, path)


def test_unprintable_output_name_is_escaped_and_written(tmp_path: Path):
    src = tmp_path / "s.png"
    Image.new("RGB", (24, 24), (90, 120, 30)).save(src)
    out = tmp_path / "résultat-日本.png"
    done = _run("refine", str(src), str(src), "-o", str(out), "--iterations", "2",
                env={"PYTHONIOENCODING": "ascii"})
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "r\\xe9sultat-\\u65e5\\u672c.png" in done.stdout
    assert out.exists()


def test_unprintable_name_in_an_error_is_escaped(tmp_path: Path):
    missing = tmp_path / "ñame.png"
    done = _run("refine", str(missing), str(missing), "-o", str(tmp_path / "o.png"),
                env={"PYTHONIOENCODING": "ascii"})
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "\\xf1ame.png" in done.stderr


def test_printable_neutralizes_control_sequences():
    assert neutralize("cat\x1b[2J\rdog\n\u202eevil\x9b") == "cat\\x1b[2J\\x0ddog\\x0a\\u202eevil\\x9b"
    assert neutralize("plain café 日本") == "plain café 日本"
    assert printable("plain café 日本", "utf-8") == "plain café 日本"
    assert printable("café\udcff", "ascii") == "caf\\xe9\\udcff"
    assert printable("x\udcff", "utf-8") == "x\\udcff"


def test_name_with_undecodable_bytes_prints_escaped(tmp_path: Path):
    src = tmp_path / "s.png"
    Image.new("RGB", (24, 24), (90, 120, 30)).save(src)
    out = os.fsdecode(bytes(tmp_path / "x") + b"\xff\x1b[31m.png")
    done = _run("refine", str(src), str(src), "-o", out, "--iterations", "2")
    assert done.returncode == 0, done.stderr
    assert "x\\udcff\\x1b[31m.png" in done.stdout and "\x1b" not in done.stdout
    assert os.path.exists(out)
