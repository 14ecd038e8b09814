"""``spl refine`` judged by its result: closer to a known ideal than its input and than the paper's solver.

The edit is a bundled photo, made smooth (shrunk, upscaled back: an upscaled
photo), given a tone curve and a color cast, then blurred. The ideal is the
same tone curve and cast on the un-blurred photo: the photo's structure with the
edit's colors, which is what refine is for (docs/benchmarks/refine.md).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageFilter

from spl_sdk.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _tone_cast(rgb: np.ndarray) -> np.ndarray:
    """Gamma 0.7, contrast 0.8 and a warm cast on a [0, 1] image."""
    y = (rgb.clip(0, 1) ** 0.7 - 0.5) * 0.8 + 0.5
    return (y * np.array([1.12, 0.97, 0.82]) + np.array([0.0, 0.02, 0.05])).clip(0, 1)


def _save(rgb: np.ndarray, path: Path) -> Path:
    Image.fromarray((rgb * 255 + 0.5).clip(0, 255).astype(np.uint8)).save(path)
    return path


def _load(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float64) / 255


def psnr(a: np.ndarray, b: np.ndarray, border: int = 8) -> float:
    """PSNR in dB on the interior."""
    d = (a - b)[border:-border, border:-border]
    return 10 * math.log10(1 / float((d * d).mean()))


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    """(source file, edit file, ideal) for a 2x-upscaled woman.png at 192 px, blurred 2 px after the color edit."""
    tmp = tmp_path_factory.mktemp("quality")
    with Image.open(ROOT / "apps" / "examples" / "woman.png") as img:
        smooth = img.convert("RGB").resize((96, 96), Image.Resampling.LANCZOS).resize(
            (192, 192), Image.Resampling.BICUBIC)
    source = np.asarray(smooth, dtype=np.float64) / 255
    ideal = _tone_cast(source)
    edit = Image.fromarray((ideal * 255 + 0.5).astype(np.uint8)).filter(ImageFilter.BoxBlur(2))
    src_path = _save(source, tmp / "source.png")
    edit.save(tmp / "edit.png")
    return src_path, tmp / "edit.png", _tone_cast(_load(src_path))  # the ideal of the source as saved


def refine(case: tuple[Path, Path, np.ndarray], out: Path, *flags: str) -> np.ndarray:
    src, edit, _ = case
    result = CliRunner().invoke(main, ["refine", str(src), str(edit), "-o", str(out), *flags],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return _load(out)


def test_refine_ends_closer_to_the_ideal_than_its_input_and_the_papers_solver(case, tmp_path):
    _, edit, ideal = case
    start = psnr(_load(edit), ideal)
    default = psnr(refine(case, tmp_path / "default.png"), ideal)
    reference = psnr(refine(case, tmp_path / "reference.png", "--solver", "reference"), ideal)
    # measured: input 32.7 dB, default 39.5, the paper's solver 31.9 (lr 1 overshoots at this size)
    assert default > start + 1.0, (start, default)
    assert default >= reference, (default, reference)


def test_holding_the_local_intensity_is_what_brings_the_result_close(case):
    # the same descent, left to chase the loss, moves the edit's own light: measured 33.0 dB
    # against 39.5 held (input 32.7)
    import torch

    from spl_losses import SPLLoss
    from spl_sdk import imageio
    from spl_sdk.descent import descend
    from spl_sdk.optimizer import keep_local_intensity

    src, edit, ideal = case
    s, e = (imageio.pil_to_tensor(Image.open(p).convert("RGB")) for p in (src, edit))
    free = descend(s, e.clone(), [SPLLoss()], 100, rtol=0.01, window=5)[0]
    held = descend(s, e.clone(), [SPLLoss()], 100, rtol=0.01, window=5, project=keep_local_intensity(e.clone()))[0]
    to_np = lambda t: ((t[0].permute(1, 2, 0).double() + 1) / 2).clamp(0, 1).numpy()  # noqa: E731
    assert psnr(to_np(held), ideal) > psnr(to_np(free), ideal) + 1.0
    assert torch.isfinite(free).all()
