"""``spl edit`` from the command line, on the tiny-random-sd15 backbone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from spl_sdk.cli import main
from spl_sdk.imageio import read_metadata

FAST = ["--backbone", "tiny-random-sd15", "--working-size", "128", "--steps", "2", "--iterations", "3"]


def _photo(tmp_path: Path, example_image: Image.Image) -> Path:
    path = tmp_path / "photo.png"
    example_image.resize((160, 120)).save(path)
    return path


def test_edit_writes_a_png_with_its_configuration(tmp_path, example_image):
    photo, out = _photo(tmp_path, example_image), tmp_path / "out.png"
    run = CliRunner().invoke(main, ["edit", str(photo), "--source", "a photo of a man",
                                    "--target", "a painting of a man", "-o", str(out), *FAST])
    assert run.exit_code == 0, run.output
    assert Image.open(out).size == (160, 120)
    meta = read_metadata(out)
    assert meta["config"]["steps"] == 2 and meta["target_prompt"] == "a painting of a man"


def test_same_seed_gives_the_same_file_and_existing_output_needs_force(tmp_path, example_image):
    photo = _photo(tmp_path, example_image)
    args = ["edit", str(photo), "-s", "a photo of a man", "-t", "a photo of a woman", *FAST]
    runner = CliRunner()
    assert runner.invoke(main, [*args, "-o", str(tmp_path / "a.png")]).exit_code == 0
    assert runner.invoke(main, [*args, "-o", str(tmp_path / "b.png")]).exit_code == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png")))
    again = runner.invoke(main, [*args, "-o", str(tmp_path / "a.png")])
    assert again.exit_code == 1 and "--force" in again.output
    assert runner.invoke(main, [*args, "-o", str(tmp_path / "a.png"), "--force"]).exit_code == 0


def test_masked_edit_saves_its_mask(tmp_path, example_image):
    photo, out, mask = _photo(tmp_path, example_image), tmp_path / "out.png", tmp_path / "mask.png"
    run = CliRunner().invoke(main, ["edit", str(photo), "-s", "a photo of a man", "-t", "a painting of a man",
                                    "-o", str(out), "--structure-area", "masked", "--mask-words-source", "man",
                                    "--save-mask", str(mask), *FAST])
    assert run.exit_code == 0, run.output
    assert Image.open(mask).size == (160, 120)


def test_user_errors_are_one_line_without_traceback(tmp_path, example_image):
    photo = _photo(tmp_path, example_image)
    out = str(tmp_path / "o.png")
    cases = {
        "unknown backbone": (["--backbone", "nope"], "available:"),
        "mask word not in prompt": (["--structure-area", "masked", "--mask-words-source", "zebra",
                                     "--backbone", "tiny-random-sd15"], "zebra"),
        "bad range": (["--cross-replace", "1.5", "--backbone", "tiny-random-sd15"], "cross_replace"),
    }
    for label, (extra, needle) in cases.items():
        argv = ["edit", str(photo), "-s", "a photo of a man", "-t", "a painting of a man", "-o", out,
                "--working-size", "128", "--steps", "2", *extra]
        run = subprocess.run([sys.executable, "-m", "spl_sdk.cli", *argv], capture_output=True, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert run.returncode == 1, label
        assert needle in run.stderr, (label, run.stderr)
        assert "Traceback" not in run.stderr, label
        assert len(run.stderr.strip().splitlines()) == 1, (label, run.stderr)


def test_json_config_file_is_read_and_flags_override_it(tmp_path, example_image):
    photo, out = _photo(tmp_path, example_image), tmp_path / "out.png"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"backbone": "tiny-random-sd15", "working_size": 128, "steps": 4, "iterations": 2}))
    run = CliRunner().invoke(main, ["edit", str(photo), "-s", "a photo", "-t", "a painting", "-o", str(out),
                                    "--config", str(cfg), "--steps", "2"])
    assert run.exit_code == 0, run.output
    assert read_metadata(out)["config"]["steps"] == 2


def test_a_mask_file_alone_restricts_the_losses(tmp_path, example_image):
    photo, out = _photo(tmp_path, example_image), tmp_path / "out.png"
    mask = tmp_path / "m.png"
    Image.new("L", (40, 30), 255).save(mask)
    run = CliRunner().invoke(main, ["edit", str(photo), "-s", "a photo", "-t", "a painting", "-o", str(out),
                                    "--mask", str(mask), *FAST])
    assert run.exit_code == 0, run.output
    assert read_metadata(out)["config"]["structure_area"] == "masked"


def test_a_misspelt_mask_word_fails_before_the_model_loads(tmp_path, example_image, monkeypatch):
    from spl_sdk.editor import Editor

    loads = []
    monkeypatch.setattr(Editor, "from_config", classmethod(lambda cls, *a, **k: loads.append(a)))
    photo = _photo(tmp_path, example_image)
    run = CliRunner().invoke(main, ["edit", str(photo), "-s", "a photo of an old man", "-t", "a painting",
                                    "--structure-area", "masked", "--mask-words-source", "oldd",
                                    "-o", str(tmp_path / "o.png"), *FAST])
    assert run.exit_code == 1 and loads == [], run.output
    assert "word 'oldd'" in run.output and "did you mean 'old'?" in run.output
    assert run.output.count("\n") == 1


def test_a_terminal_sees_what_loads_until_it_has_loaded() -> None:
    import io

    from spl_sdk.cli.prechecks import loading_status

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, shown in ((Terminal(), True), (io.StringIO(), False)):
        with loading_status("loading tiny-random-sd15 on cpu …", stream):
            assert ("loading tiny-random-sd15" in stream.getvalue()) is shown
        assert stream.getvalue().endswith("\r\033[K") is shown  # erased: the phases follow


def test_edit_warns_about_unused_options_and_full_masks_before_loading(tmp_path, example_image):
    photo = _photo(tmp_path, example_image)
    Image.new("L", Image.open(photo).size, 255).save(tmp_path / "all.png")
    run = CliRunner().invoke(main, ["edit", str(photo), "-s", "a photo", "-t", "a painting", "--device", "cpu",
                                    "--option", "cpl.chroma=kornia", "--mask", str(tmp_path / "all.png"),
                                    "-o", str(tmp_path / "o.png"), *FAST])
    assert run.exit_code == 0, run.output
    err = run.stderr
    assert "Warning: the options cpl.chroma are ignored: this run uses no loss term 'cpl'" in err
    assert "--color-loss cpl" in err
    assert "the mask covers 100.0% of the image: (almost) everything" in err
    assert err.index("Warning:") < err.index("steps")  # said before the slow part


def test_a_result_png_as_config_repeats_the_run_without_image(tmp_path, example_image, monkeypatch):
    photo = _photo(tmp_path, example_image)
    monkeypatch.chdir(tmp_path)
    first = CliRunner().invoke(main, ["edit", photo.name, "-s", "a photo", "-t", "a painting",
                                      "-o", "first.png", *FAST])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(main, ["edit", "--config", "first.png", "-o", "again.png"])
    assert again.exit_code == 0, again.output
    assert np.array_equal(np.asarray(Image.open("first.png")), np.asarray(Image.open("again.png")))
    photo.unlink()
    gone = CliRunner().invoke(main, ["edit", "--config", "first.png", "-o", "third.png"])
    assert gone.exit_code == 2 and f"'{photo.name}', is not there" in gone.output
    none = CliRunner().invoke(main, ["edit", "-t", "x", "-o", "fourth.png"])
    assert none.exit_code == 2 and "Missing argument 'IMAGE'" in none.output
