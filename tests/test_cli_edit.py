"""``spl edit`` from the command line, on the tiny-random backbone."""

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

FAST = ["--backbone", "tiny-random", "--working-size", "128", "--steps", "2", "--iterations", "3"]


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
                                     "--backbone", "tiny-random"], "zebra"),
        "bad range": (["--cross-replace", "1.5", "--backbone", "tiny-random"], "cross_replace"),
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
    cfg.write_text(json.dumps({"backbone": "tiny-random", "working_size": 128, "steps": 4, "iterations": 2}))
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
