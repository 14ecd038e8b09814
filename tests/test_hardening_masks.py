"""A mask that selects nothing (all black, fully transparent) warns that the masked losses do nothing."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from spl_sdk.cli import main
from spl_sdk.config import RefineConfig
from spl_sdk.errors import EmptyMaskWarning
from spl_sdk.plugins import Plugins
from spl_sdk.terms import build_terms


def _cfg(**kw) -> RefineConfig:
    return RefineConfig(structure_area="masked", **kw)


def test_api_warns_for_a_black_mask():
    with pytest.warns(EmptyMaskWarning, match="selects nothing .* structure loss will do nothing"):
        build_terms(Plugins(env={}), _cfg(), torch.zeros(1, 1, 8, 8))
    with pytest.warns(EmptyMaskWarning, match="structure and color losses"):
        build_terms(Plugins(env={}), _cfg(color_loss="cpl", color_area="masked"), torch.zeros(1, 1, 8, 8))


@pytest.mark.parametrize("mask", [torch.ones(1, 1, 8, 8), torch.zeros(1, 1, 8, 8).index_fill_(3, torch.tensor([2]), 1.0)])
def test_full_or_partial_mask_does_not_warn(mask):
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmptyMaskWarning)
        assert len(build_terms(Plugins(env={}), _cfg(), mask)) == 1


def test_unmasked_terms_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmptyMaskWarning)
        build_terms(Plugins(env={}), RefineConfig(), torch.zeros(1, 1, 8, 8))


def test_editor_warns(tiny_backbone, example_image):
    from spl_sdk.config import EditConfig
    from spl_sdk.editor import Editor

    editor = Editor(tiny_backbone, EditConfig(backbone="tiny-random-sd15", device="cpu", steps=2,
                                              iterations=2, working_size=64, structure_area="masked"),
                    Plugins(env={}))
    with pytest.warns(EmptyMaskWarning):
        editor.edit(example_image.resize((64, 64)), "a photo", "a red photo",
                    mask=Image.new("L", (64, 64), 0))


@pytest.mark.parametrize("mode", ["black", "transparent"])
def test_cli_prints_one_warning_line(tmp_path: Path, mode: str):
    src = tmp_path / "s.png"
    Image.new("RGB", (32, 32), (40, 90, 10)).save(src)
    mask = tmp_path / "m.png"
    (Image.new("L", (32, 32), 0) if mode == "black" else Image.new("RGBA", (32, 32), (255, 255, 255, 0))).save(mask)
    result = CliRunner().invoke(main, ["refine", str(src), str(src), "-o", str(tmp_path / "o.png"),
                                       "--mask", str(mask), "--iterations", "2"])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stderr.splitlines() if "selects nothing" in ln]
    assert len(lines) == 1 and lines[0].startswith("Warning: the mask selects nothing"), result.stderr
