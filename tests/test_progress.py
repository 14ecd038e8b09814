"""Progress per phase: bars on a terminal (tested in a pseudo-terminal), one line per phase otherwise."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from spl_sdk.cli import main
from spl_sdk.cli.progress import phase_progress
from spl_sdk.editor import Editor

# 5 steps with opt_start 0.8: 4 plain steps, 1 injected step, then 3 post-processing iterations
FAST = ["--backbone", "tiny-random-sd15", "--working-size", "64", "--steps", "5", "--iterations", "3"]


def _photo(tmp_path: Path, example_image: Image.Image) -> Path:
    path = tmp_path / "photo.png"
    example_image.resize((80, 64)).save(path)
    return path


def test_reporter_writes_one_line_per_phase_off_a_terminal():
    stream = io.StringIO()
    with phase_progress(stream=stream, terminal=False) as report:
        for i in range(1, 4):
            report("steps", i, 3)
        report("post-processing", 1, 2)
        report("post-processing", 2, 2)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("steps: 3/3 step in ") and "step/s" in lines[0]
    assert lines[1].startswith("post-processing: 2/2 it in ")


def test_quiet_reporter_writes_nothing():
    stream = io.StringIO()
    with phase_progress(stream=stream, terminal=True, quiet=True) as report:
        report("steps", 1, 1)
    assert stream.getvalue() == ""


def test_editor_reports_phases_and_keeps_the_plain_callback(tiny_backbone, plugins, example_image):
    from spl_sdk.config import EditConfig

    editor = Editor(tiny_backbone, EditConfig(backbone="tiny-random-sd15", device="cpu", working_size=64,
                                              steps=5, iterations=3), plugins)
    phases: list[tuple[str, int, int]] = []
    counts: list[tuple[int, int]] = []
    editor.edit(example_image.resize((64, 64)), "a photo of a man", "a painting of a man",
                callback=lambda done, total, preview: counts.append((done, total)),
                on_phase=lambda *a: phases.append(a))
    assert phases == [("steps", i, 4) for i in range(1, 5)] + [("injection", 1, 1)] + \
        [("post-processing", i, 3) for i in range(1, 4)]
    assert counts[-1] == (8, 8) and len(counts) == 8


def test_cli_edit_off_a_terminal_prints_one_line_per_phase_and_quiet_none(tmp_path, example_image):
    photo = _photo(tmp_path, example_image)
    args = ["edit", str(photo), "-s", "a photo of a man", "-t", "a painting of a man", *FAST]
    run = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "a.png")])
    assert run.exit_code == 0, run.output
    for line in ("steps: 4/4 step", "injection: 1/1 step", "post-processing: 3/3 it"):
        assert line in run.stderr, run.stderr
    quiet = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "b.png"), "--quiet"])
    assert quiet.exit_code == 0 and "steps:" not in quiet.stderr and quiet.stderr.strip() == ""


def test_cli_refine_reports_its_iterations(tmp_path, example_image):
    photo = _photo(tmp_path, example_image)
    run = CliRunner().invoke(main, ["refine", str(photo), str(photo), "-o", str(tmp_path / "r.png"),
                                    "--iterations", "2"])
    assert run.exit_code == 0, run.output
    assert "refine: 2/2 it in " in run.stderr


def test_cli_edit_on_a_terminal_draws_a_bar_per_phase_with_rate_and_eta(tmp_path, example_image):
    photo = _photo(tmp_path, example_image)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # rows, columns
    proc = subprocess.Popen([sys.executable, "-m", "spl_sdk.cli", "edit", str(photo), "-s", "a photo of a man",
                             "-t", "a painting of a man", "-o", str(tmp_path / "t.png"), *FAST],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=120) == 0
    shown = b"".join(chunks).decode(errors="replace")
    for phase in ("steps", "injection", "post-processing"):
        assert f"{phase}: 100%" in shown, shown
    assert "step/s]" in shown and "<00:00" in shown  # rate and ETA, tqdm's format
    assert "it/s]" in shown


def test_edit_result_save_keeps_the_metadata_and_refuses_to_overwrite(tiny_backbone, plugins, example_image,
                                                                       tmp_path):
    import pytest

    from spl_sdk.config import EditConfig
    from spl_sdk.errors import Canceled, SplError
    from spl_sdk.imageio import read_metadata

    editor = Editor(tiny_backbone, EditConfig(backbone="tiny-random-sd15", device="cpu", working_size=64,
                                              steps=2, iterations=1), plugins)
    previews = []
    result = editor.edit(example_image.resize((64, 64)), "a photo of a man", "a painting of a man",
                         previews=True, callback=lambda d, t, p: previews.append(p))
    assert isinstance(previews[0], Image.Image)  # as the README says
    path = result.save(tmp_path / "r.png")
    assert read_metadata(path)["target_prompt"] == "a painting of a man"
    with pytest.raises(SplError, match="already exists"):
        result.save(path)
    result.save(path, force=True)
    with pytest.raises(Canceled):  # the README's cancel: return False from the callback
        editor.edit(example_image.resize((64, 64)), "a photo", "a painting", callback=lambda *a: False)
