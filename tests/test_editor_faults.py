"""Editor faults found in review: progress totals, the 'file' extractor, post-processor progress, loss flags."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import spl_attention
import spl_backbones
import spl_losses
import spl_masks
import spl_methods
import spl_postprocess
from spl_sdk import hookimpl
from spl_sdk.cli import main
from spl_sdk.components import MaskExtractor, PostProcessor
from spl_sdk.config import EditConfig, RefineConfig
from spl_sdk.editor import Editor
from spl_sdk.errors import ConfigError
from spl_sdk.imageio import read_metadata
from spl_sdk.loss_flags import resolve_loss_options
from spl_sdk.plugins import Plugins

FAST = dict(backbone="tiny-random-sd15", working_size=96, steps=2, iterations=3)


class LeftHalf(MaskExtractor):
    """The left half of the photo; needs no first pass."""

    name = "left-half"

    def extract(self, context):
        mask = torch.zeros(1, 1, *context.source_image.shape[-2:])
        mask[..., : mask.shape[-1] // 2] = 1
        return mask


class Counting(PostProcessor):
    """Reports four units through the callback and returns the edit unchanged."""

    name = "counting"

    def progress_total(self) -> int:
        return 4

    def process(self, source, edited, terms, callback=None):
        for i in range(1, 5):
            callback(i, 4)
        return edited


class OldStyle(PostProcessor):
    """A post-processor written against the old ``progress=`` keyword."""

    name = "old-style"

    def process(self, source, edited, terms, progress=None):
        progress(1, 1, 0.0)
        return edited


def plugins_with(*classes: type) -> Plugins:
    module = types.ModuleType("inline_faults")

    @hookimpl
    def spl_register_mask_extractors(register):
        for cls in classes:
            if issubclass(cls, MaskExtractor):
                register(cls)

    @hookimpl
    def spl_register_post_processors(register):
        for cls in classes:
            if issubclass(cls, PostProcessor):
                register(cls)

    module.spl_register_mask_extractors = spl_register_mask_extractors
    module.spl_register_post_processors = spl_register_post_processors
    plugins = Plugins(load_entrypoints=False)
    for m in (spl_backbones, spl_attention, spl_losses, spl_masks, spl_postprocess, spl_methods):
        plugins.register(m, name=m.__name__)
    plugins.register(module, name="inline")
    return plugins


@pytest.fixture
def photo(example_image) -> Image.Image:
    return example_image.resize((96, 64))


def test_progress_total_counts_one_pass_for_an_extractor_without_a_first_pass(tiny_backbone, photo):
    editor = Editor(tiny_backbone, EditConfig(**FAST), plugins_with(LeftHalf))
    seen: list[tuple[int, int]] = []
    result = editor.edit(photo, "a photo", "a painting", structure_area="masked", mask_extractor="left-half",
                         callback=lambda done, total, _p: seen.append((done, total)))
    assert {total for _, total in seen} == {2 + 3}  # one pass of 2 steps + 3 post-process iterations
    assert seen[-1] == (5, 5)
    assert np.asarray(result.mask)[:, :48].min() == 255 and np.asarray(result.mask)[:, 48:].max() == 0


def test_the_post_processor_receives_the_progress_callback(tiny_backbone, photo):
    editor = Editor(tiny_backbone, EditConfig(**FAST, post_processors=["counting"]), plugins_with(Counting))
    seen: list[tuple[int, int]] = []
    editor.edit(photo, "a photo", "a painting", callback=lambda done, total, _p: seen.append((done, total)))
    assert seen == [(1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (6, 6)]
    old = Editor(tiny_backbone, EditConfig(**FAST, post_processors=["old-style"]), plugins_with(OldStyle))
    seen.clear()
    old.edit(photo, "a photo", "a painting", callback=lambda done, total, _p: seen.append((done, total)))
    assert seen[-1] == (3, 3)  # the old progress= keyword still reports (its total: 1 unit)


def test_loss_refine_reports_its_iterations(tiny_backbone, photo, plugins):
    editor = Editor(tiny_backbone, EditConfig(**FAST), plugins)
    seen: list[tuple[int, int]] = []
    editor.edit(photo, "a photo", "a painting", callback=lambda done, total, _p: seen.append((done, total)))
    assert seen[2:] == [(3, 5), (4, 5), (5, 5)]


def test_the_file_extractor_works_end_to_end(tiny_backbone, photo, plugins, tmp_path):
    mask = Image.new("L", (30, 20), 0)
    mask.paste(255, (0, 0, 15, 20))
    mask.save(tmp_path / "m.png")
    editor = Editor(tiny_backbone, EditConfig(**FAST), plugins)
    result = editor.edit(photo, "a photo", "a painting", structure_area="masked", mask_extractor="file",
                         mask_file=tmp_path / "m.png")
    m = np.asarray(result.mask)
    assert m[:, :40].min() > 200 and m[:, 56:].max() < 50
    # without a mask it is refused before any work, naming the way to give one
    with pytest.raises(ConfigError, match=r"--mask FILE"):
        editor.edit(photo, "a photo", "a painting", structure_area="masked", mask_extractor="file",
                    callback=lambda *a: pytest.fail("work started"))


def test_spl_edit_with_the_file_extractor(tmp_path, example_image):
    photo, out, saved = tmp_path / "p.png", tmp_path / "o.png", tmp_path / "saved.png"
    example_image.resize((96, 64)).save(photo)
    Image.new("L", (96, 64), 255).save(tmp_path / "m.png")
    args = ["edit", str(photo), "-s", "a photo", "-t", "a painting", "-o", str(out), "--backbone",
            "tiny-random-sd15", "--steps", "2", "--iterations", "2", "--mask-extractor", "file",
            "--structure-area", "masked"]
    run = CliRunner().invoke(main, [*args, "--mask", str(tmp_path / "m.png"), "--save-mask", str(saved)])
    assert run.exit_code == 0, run.output
    assert np.asarray(Image.open(saved)).min() == 255
    missing = CliRunner().invoke(main, [*args, "--force"])
    assert missing.exit_code == 1 and "--mask FILE" in missing.output


# ------------------------------------------------------------------ loss flags, one rule
@pytest.mark.parametrize("cls", [EditConfig, RefineConfig])
def test_one_rule_resolves_cpl_and_a_lone_mask(cls, tmp_path):
    mask = tmp_path / "m.png"
    cfg = resolve_loss_options(cls, None, mask=mask, cpl=True)
    assert (cfg.color_loss, cfg.structure_area, cfg.color_area) == ("cpl", "masked", "masked")
    # a masked area on a loss that is off does not count: the active color loss is masked
    cfg = resolve_loss_options(cls, None, mask=mask, cpl=True, structure_loss="none", structure_area="masked")
    assert cfg.color_area == "masked"
    kept = resolve_loss_options(cls, None, mask=mask, color_area="masked", cpl=True)
    assert (kept.structure_area, kept.color_area) == ("whole", "masked")
    with pytest.raises(ConfigError, match="--cpl means --color-loss cpl"):
        resolve_loss_options(cls, None, cpl=True, color_loss="pixel")


def _pair(tmp_path: Path, example_image: Image.Image) -> tuple[Path, Path, Path]:
    src, edited, mask = tmp_path / "s.png", tmp_path / "e.png", tmp_path / "m.png"
    example_image.resize((32, 24)).save(src)
    example_image.resize((32, 24)).rotate(3).save(edited)
    Image.new("L", (32, 24), 255).save(mask)
    return src, edited, mask


def test_edit_and_refine_refuse_cpl_with_another_color_loss(tmp_path, example_image):
    src, edited, _ = _pair(tmp_path, example_image)
    refine = CliRunner().invoke(main, ["refine", str(src), str(edited), "-o", str(tmp_path / "r.png"),
                                       "--cpl", "--color-loss", "pixel"])
    edit = CliRunner().invoke(main, ["edit", str(src), "-s", "a", "-t", "b", "-o", str(tmp_path / "e2.png"),
                                     "--backbone", "tiny-random-sd15", "--cpl", "--color-loss", "pixel"])
    for run in (refine, edit):
        assert run.exit_code == 1 and "--cpl means --color-loss cpl" in run.output, run.output


def test_refine_masks_the_active_color_loss_when_the_masked_structure_loss_is_off(tmp_path, example_image):
    src, edited, mask = _pair(tmp_path, example_image)
    out = tmp_path / "r.png"
    run = CliRunner().invoke(main, ["refine", str(src), str(edited), "-o", str(out), "--mask", str(mask),
                                    "--structure-loss", "none", "--structure-area", "masked", "--cpl",
                                    "--iterations", "2"])
    assert run.exit_code == 0, run.output
    assert read_metadata(out)["config"]["color_area"] == "masked"
