"""Memory: images whose estimated working memory exceeds what is available are refused up front
(with --allow-large to override), running out during work is one line, and the studio limits
uploads by pixels before decoding them."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from spl_sdk import footprint
from spl_sdk.cli import main
from spl_sdk.errors import ImageError
from spl_sdk.footprint import BYTES_PER_PIXEL, MemoryBudgetError, check_fits, working_bytes


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), (120, 60, 30)).save(path)
    return path


@pytest.fixture
def tiny_memory(monkeypatch):
    """A machine with 100 KB available: any real image is over budget."""
    monkeypatch.setattr(footprint, "available_bytes", lambda: 100_000)
    monkeypatch.delenv("SPL_ALLOW_LARGE", raising=False)


def test_estimate_is_one_constant_per_pixel():
    assert working_bytes(8000, 8000) == 8000 * 8000 * BYTES_PER_PIXEL
    assert footprint.available_bytes() is None or footprint.available_bytes() > 0
    with pytest.raises(MemoryBudgetError,
                       match=r"a 8000x8000 image needs about 15.3 GiB .*only 2.0 GiB is available.*--allow-large"):
        check_fits(8000, 8000, available=2 * 2**30)
    check_fits(8000, 8000, available=2 * 2**30, allow_large=True)
    check_fits(512, 512, available=2 * 2**30)


def test_refine_refuses_up_front_and_allow_large_overrides(tmp_path, photo, tiny_memory):
    out = tmp_path / "o.png"
    run = CliRunner().invoke(main, ["refine", str(photo), str(photo), "-o", str(out)])
    assert run.exit_code == 1 and not out.exists()
    assert run.stderr.strip().splitlines() == [
        "Error: a 64x48 image needs about 1 MiB of working memory to refine it at full size, but only "
        "0 MiB is available; downscale it, free memory, or pass --allow-large (SPL_ALLOW_LARGE=1) to "
        "try anyway."]
    run = CliRunner().invoke(main, ["refine", str(photo), str(photo), "-o", str(out), "--allow-large",
                                    "--iterations", "2"])
    assert run.exit_code == 0, run.output and out.exists()


def test_edit_refuses_before_the_model_loads(tmp_path, photo, tiny_memory, monkeypatch):
    from spl_sdk.editor import Editor

    monkeypatch.setattr(Editor, "from_config", lambda *a, **k: pytest.fail("model loaded"))
    run = CliRunner().invoke(main, ["edit", str(photo), "-s", "a", "-t", "b", "-o", str(tmp_path / "o.png"),
                                    "--backbone", "tiny-random-sd15"])
    assert run.exit_code == 1 and "to post-process it at full size" in run.stderr


@pytest.mark.parametrize("error", [MemoryError(), RuntimeError(
    "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to "
    "allocate 68719476736 bytes. Error code 12 (Cannot allocate memory)")])
def test_running_out_of_memory_is_one_line(tmp_path, photo, monkeypatch, error):
    import spl_sdk.optimizer

    def exhausted(*_a, **_k):
        raise error

    monkeypatch.setattr(spl_sdk.optimizer, "optimize_image", exhausted)
    run = CliRunner().invoke(main, ["refine", str(photo), str(photo), "-o", str(tmp_path / "o.png")])
    assert run.exit_code == 1
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("Error: ran out of memory to refine it: a 64x48 image needs about")


def test_other_runtime_errors_are_not_disguised():
    with pytest.raises(RuntimeError, match="shape mismatch"):
        with footprint.out_of_memory_as_error(4, 4):
            raise RuntimeError("shape mismatch")


def _big_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (8000, 8000), 0).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def test_studio_refuses_a_small_file_of_many_pixels(monkeypatch):
    from spl_apps.uploads import read_fitted_mask, read_image

    monkeypatch.delenv("SPL_STUDIO_MAX_PIXELS", raising=False)
    data = _big_png()
    assert len(data) < 200_000  # a few KB on the wire, 64 megapixels once decoded
    began = time.perf_counter()
    with pytest.raises(ImageError, match=r"upload 'bomb.png' is 8000x8000 pixels \(64 MP\), over this "
                                         r"studio's limit of 16.8 MP"):
        read_image("bomb.png", data)
    with pytest.raises(ImageError, match="over this studio's limit"):
        read_fitted_mask("bomb.png", data, (64, 64))
    assert time.perf_counter() - began < 2  # refused from the header, nothing decoded


def test_studio_limit_follows_memory_and_the_operator(monkeypatch, tiny_memory):
    from spl_apps.uploads import read_image

    buffer = io.BytesIO()
    Image.new("RGB", (300, 200)).save(buffer, format="PNG")
    with pytest.raises(ImageError, match=r"upload 'p.png': a 300x200 image needs about .*downscale it first\."):
        read_image("p.png", buffer.getvalue())
    monkeypatch.setattr(footprint, "available_bytes", lambda: None)
    monkeypatch.setenv("SPL_STUDIO_MAX_PIXELS", "10000")
    with pytest.raises(ImageError, match="limit of 0.01 MP"):
        read_image("p.png", buffer.getvalue())
    monkeypatch.setenv("SPL_STUDIO_MAX_PIXELS", "100000")
    assert read_image("p.png", buffer.getvalue()).size == (300, 200)


def test_harmonize_refuses_up_front(tmp_path, tiny_memory, monkeypatch):
    from test_cli_harmonize import make_pair

    from spl_sdk.editor import Editor

    monkeypatch.setattr(Editor, "from_config", lambda *a, **k: pytest.fail("model loaded"))
    composite = make_pair(tmp_path, tmp_path / "m", "a", "woman.png", "cats.png", size=(64, 48))
    run = CliRunner().invoke(main, ["harmonize", str(composite), str(tmp_path / "m" / "a.png"),
                                    "-o", str(tmp_path / "o.png"), "--backbone", "tiny-random-sd15"])
    assert run.exit_code == 1
    assert run.stderr.strip().splitlines()[-1].startswith("Error: a 64x48 image needs about")
