"""``spl refine``: lowers the structure loss at the source's own size; clear one-line errors."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner, Result
from PIL import Image, ImageEnhance, ImageFilter

from spl_sdk import imageio
from spl_sdk.cli import main
from spl_sdk.cli.progress import progress_bar
from spl_sdk.plugins import Plugins

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "apps" / "examples" / "old_man.png"


def _photo(size: tuple[int, int]) -> Image.Image:
    with Image.open(PHOTO) as img:
        return img.convert("RGB").resize(size, Image.Resampling.LANCZOS)


def _synthetic_edit(img: Image.Image) -> Image.Image:
    """A blurred, recolored copy: edges softened, colors moved, as a generic editor might."""
    blurred = img.filter(ImageFilter.GaussianBlur(2.5))
    return ImageEnhance.Color(ImageEnhance.Brightness(blurred).enhance(1.15)).enhance(1.6)


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """A 160x120 (non-square) source and its synthetic edit as PNG files."""
    src = _photo((160, 120))
    src.save(tmp_path / "src.png")
    _synthetic_edit(src).save(tmp_path / "edit.png")
    return tmp_path / "src.png", tmp_path / "edit.png"


def run(*args: object) -> Result:
    return CliRunner().invoke(main, ["refine", *map(str, args)], catch_exceptions=False)


def losses(result: Result) -> tuple[float, float]:
    m = re.search(r"loss before: (\S+), after: (\S+)", result.stdout)
    assert m, result.output
    return float(m.group(1)), float(m.group(2))


def spl_loss(source: Image.Image, edited: Image.Image) -> float:
    term = Plugins(env={}).loss_term("spl")()
    return float(term(imageio.pil_to_tensor(source), imageio.pil_to_tensor(edited)))


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code != 0
    # a deprecation note ("Note: --iters is deprecated ...") is not part of the error
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("Note: ")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ------------------------------------------------------------------ the job itself
def test_refine_lowers_the_structure_loss(pair: tuple[Path, Path], tmp_path: Path) -> None:
    src, edit = pair
    out = tmp_path / "out.png"
    result = run(src, edit, "-o", out, "--iterations", 30)
    assert result.exit_code == 0, result.output
    before, after = losses(result)
    assert after < 0.2 * before
    source, edited, refined = (Image.open(p).convert("RGB") for p in (src, edit, out))
    assert refined.size == source.size
    # measured again on the written 8-bit file, independently of the command's own report
    assert spl_loss(source, refined) < 0.3 * spl_loss(source, edited)
    assert before == pytest.approx(spl_loss(source, edited), rel=1e-4)


@pytest.mark.slow
def test_large_non_square_image_keeps_its_exact_size(tmp_path: Path) -> None:
    src = _photo((700, 455)).resize((2000, 1300), Image.Resampling.BICUBIC)
    src.save(tmp_path / "big.png", compress_level=1)
    src.filter(ImageFilter.GaussianBlur(2)).save(tmp_path / "big_edit.png", compress_level=1)
    result = run(tmp_path / "big.png", tmp_path / "big_edit.png", "-o", tmp_path / "out.png", "--iterations", 2)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out.png") as out:
        assert out.size == (2000, 1300)
    before, after = losses(result)
    assert after < before


def test_edited_of_another_size_is_resized_to_the_source(pair: tuple[Path, Path], tmp_path: Path) -> None:
    src, edit = pair
    Image.open(edit).resize((64, 64)).save(tmp_path / "small_edit.jpg")
    result = run(src, tmp_path / "small_edit.jpg", "-o", tmp_path / "out.png", "--iterations", 5)
    assert result.exit_code == 0, result.output
    assert "resizing" in result.stderr and "160x120" in result.stderr
    assert Image.open(tmp_path / "out.png").size == (160, 120)


def test_mask_of_another_size_restricts_both_terms(pair: tuple[Path, Path], tmp_path: Path) -> None:
    src, edit = pair
    mask = np.zeros((30, 40), np.uint8)
    mask[:, 20:] = 255  # right half inside
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "out.png"
    result = run(src, edit, "-o", out, "--mask", tmp_path / "mask.png", "--cpl", "--iterations", 10)
    assert result.exit_code == 0, result.output
    refined = np.asarray(Image.open(out).convert("RGB"), np.int16)
    edited = np.asarray(Image.open(edit).convert("RGB"), np.int16)
    assert refined.shape == (120, 160, 3)
    assert np.array_equal(refined[:, :60], edited[:, :60])  # outside the mask: untouched
    assert np.abs(refined[:, 100:] - edited[:, 100:]).mean() > 1  # inside: refined
    cfg = imageio.read_metadata(out)["config"]
    assert (cfg["structure_area"], cfg["color_area"], cfg["color_loss"]) == ("masked", "masked", "cpl")


def test_explicit_masked_area_is_kept(pair: tuple[Path, Path], tmp_path: Path) -> None:
    src, edit = pair
    Image.new("L", (16, 12), 255).save(tmp_path / "mask.png")
    result = run(src, edit, "-o", tmp_path / "o.png", "--mask", tmp_path / "mask.png", "--cpl",
                 "--color-area", "masked", "--iterations", 2)
    assert result.exit_code == 0, result.output
    cfg = imageio.read_metadata(tmp_path / "o.png")["config"]
    assert (cfg["structure_area"], cfg["color_area"]) == ("whole", "masked")


def test_metadata_reproduces_the_run(pair: tuple[Path, Path], tmp_path: Path) -> None:
    src, edit = pair
    out = tmp_path / "out.png"
    assert run(src, edit, "-o", out, "--iterations", 6, "--structure-weight", 5000).exit_code == 0
    meta = imageio.read_metadata(out)
    assert meta["source"] == str(src) and meta["edited"] == str(edit)
    assert meta["config"]["iterations"] == 6 and meta["config"]["structure_weight"] == 5000.0
    args = shlex.split(meta["command"])
    assert args[:2] == ["spl", "refine"]
    args[args.index("-o") + 1] = str(tmp_path / "again.png")
    assert CliRunner().invoke(main, args[1:]).exit_code == 0
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(tmp_path / "again.png")))


def test_config_file_with_flag_override(pair: tuple[Path, Path], tmp_path: Path) -> None:
    src, edit = pair
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"iterations": 3, "structure_weight": 500,
                                                       "color_loss": "l1"}))
    out = tmp_path / "out.png"
    result = run(src, edit, "-o", out, "--config", tmp_path / "run.yaml", "--structure-weight", 800)
    assert result.exit_code == 0, result.output
    cfg = imageio.read_metadata(out)["config"]
    assert (cfg["iterations"], cfg["structure_weight"], cfg["color_loss"]) == (3, 800.0, "l1")


def test_force_is_needed_to_overwrite(pair: tuple[Path, Path], tmp_path: Path) -> None:
    src, edit = pair
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    assert_one_line_error(run(src, edit, "-o", out, "--iterations", 2), str(out), "already exists", "--force")
    assert out.read_bytes() == b"precious"
    assert run(src, edit, "-o", out, "--iterations", 2, "--force").exit_code == 0
    assert Image.open(out).size == (160, 120)


@pytest.mark.parametrize("case", ["missing", "not_image", "unknown_loss", "negative_weight",
                                  "both_off", "iters_conflict", "bad_suffix", "bad_mask"])
def test_bad_input_exits_with_one_line(pair: tuple[Path, Path], tmp_path: Path, case: str) -> None:
    src, edit = pair
    (tmp_path / "notes.png").write_text("hello")
    out = tmp_path / "out.png"
    args, fragments = {
        "missing": ([tmp_path / "nope.png", edit, "-o", out], ["nope.png", "does not exist"]),
        "not_image": ([src, tmp_path / "notes.png", "-o", out], ["notes.png"]),
        "unknown_loss": ([src, edit, "-o", out, "--structure-loss", "nope"],
                         ["unknown loss term 'nope'", "spl"]),
        "negative_weight": ([src, edit, "-o", out, "--structure-weight", -1],
                            ["'structure_weight'", "0 to 1e+08"]),
        "both_off": ([src, edit, "-o", out, "--structure-loss", "none"], ["turn at least one on"]),
        "iters_conflict": ([src, edit, "-o", out, "--iters", 3, "--iterations", 4], ["--iters"]),
        "bad_suffix": ([src, edit, "-o", tmp_path / "out.gif"], ["out.gif", ".png"]),
        "bad_mask": ([src, edit, "-o", out, "--mask", tmp_path / "notes.png"], ["notes.png"]),
    }[case]
    assert_one_line_error(run(*args, "--iterations", 2) if case != "iters_conflict" else run(*args),
                          *fragments)
    assert not out.exists()


@pytest.mark.slow  # a fresh interpreter imports torch
def test_error_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", "from spl_sdk.cli import main; main()", "refine", str(tmp_path / "a.png"),
                           str(tmp_path / "b.png"), "-o", str(tmp_path / "c.png")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"Error: image file '{tmp_path / 'a.png'}' does not exist; check the path."]


# ------------------------------------------------------------------ progress bar
def test_progress_bar_shows_only_when_enabled(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar("refine", enabled=True) as progress:
        for i in range(1, 6):
            progress(i, 5, 1.0 / i)
    assert "refine" in capsys.readouterr().err
    with progress_bar("refine", enabled=False) as progress:
        progress(1, 5, 0.5)
    assert capsys.readouterr().err == ""


def test_progress_bar_writes_one_line_off_a_terminal_and_none_when_quiet(
        capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar("refine") as progress:  # pytest's captured stderr is not a terminal
        progress(1, 2, None)
    assert capsys.readouterr().err.startswith("refine: 1/2 it in ")
    with progress_bar("refine", quiet=True) as progress:
        progress(1, 2, None)
    assert capsys.readouterr().err == ""
