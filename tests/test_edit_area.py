"""``--edit-area masked``: every method edits only inside the region; outside, the photo's pixels exactly."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from spl_sdk.cli import main
from spl_sdk.components import EditRequest
from spl_sdk.config import EditConfig
from spl_sdk.editor import Editor
from spl_sdk.imageio import pil_to_tensor
from spl_sdk.lazy import torch
from spl_sdk.region import feather_width, hold_outside, latent_outside

SIZE = 64
SOURCE, TARGET = "a photo of a man", "a painting of a man"
# backbone -> the fast settings of its default method (flowedit: 3 steps of which 2 edit)
CASES = {"tiny-random-sd15": {"steps": 2}, "tiny-random-sdxl": {"steps": 2}, "tiny-random-sd3": {"steps": 3},
         "tiny-random-flux": {"steps": 3}, "tiny-random-kontext": {"steps": 2},
         "tiny-random-qwen-edit": {"steps": 2}, "tiny-random-klein": {"steps": 2}}
COMMON = {"working_size": SIZE, "iterations": 3, "device": "cpu", "seed": 1}


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    from conftest import EXAMPLES

    with Image.open(EXAMPLES / "old_man.png") as img:
        return img.convert("RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS)


@pytest.fixture(scope="module")
def region() -> Image.Image:
    """White (edit here) on the left half."""
    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (0, 0, SIZE // 2, SIZE))
    return mask


def _far_outside() -> slice:
    """Columns farther than the feather band (and a pixel of resizing) from the left-half region."""
    return slice(SIZE // 2 + feather_width((SIZE, SIZE)) + 1, None)


def _check_confined(result: Image.Image, photo: Image.Image) -> None:
    out, src = np.asarray(result.convert("RGB")).astype(int), np.asarray(photo).astype(int)
    np.testing.assert_array_equal(out[:, _far_outside()], src[:, _far_outside()])  # outside: the photo
    assert np.abs(out[:, : SIZE // 2 - 2] - src[:, : SIZE // 2 - 2]).mean() > 1  # inside: edited


def test_a_masked_edit_through_the_cli_keeps_the_photo_outside_the_mask(tmp_path, photo, region):
    path, mask, out = tmp_path / "photo.png", tmp_path / "mask.png", tmp_path / "out.png"
    photo.save(path)
    region.save(mask)
    run = CliRunner().invoke(main, ["edit", str(path), "-s", SOURCE, "-t", TARGET, "-o", str(out), "-q",
                                    "--backbone", "tiny-random-sd15", "--working-size", str(SIZE), "--steps", "2",
                                    "--iterations", "3", "--edit-area", "masked", "--mask", str(mask)])
    assert run.exit_code == 0, run.output
    _check_confined(Image.open(out), photo)
    from spl_sdk.imageio import read_metadata

    assert read_metadata(out)["config"]["edit_area"] == "masked"  # recorded, so a replay confines too


@pytest.mark.parametrize("backbone", ["tiny-random-sdxl", "tiny-random-sd3", "tiny-random-flux", "tiny-random-kontext"])
def test_a_masked_edit_keeps_the_photo_outside_the_mask_on_every_family(photo, region, backbone):
    editor = Editor.from_config(EditConfig(backbone=backbone, **COMMON, **CASES[backbone]))
    whole = editor.edit(photo, SOURCE, TARGET, mask=region)
    masked = editor.edit(photo, SOURCE, TARGET, mask=region, edit_area="masked")
    assert (whole.config.edit_area, masked.config.edit_area) == ("whole", "masked")
    _check_confined(masked.image, photo)
    # without it the diffusion repaints outside the mask too (what --mask alone did before)
    outside = _far_outside()
    assert not np.array_equal(np.asarray(whole.image)[:, outside], np.asarray(photo)[:, outside])


def test_whole_is_the_edit_as_before(tmp_path, photo, region):
    editor = Editor.from_config(EditConfig(backbone="tiny-random-sd15", **COMMON, steps=2))
    given = editor.edit(photo, SOURCE, TARGET, mask=region, edit_area="whole")
    unset = Editor.from_config(EditConfig(backbone="tiny-random-sd15", **COMMON, steps=2)).edit(
        photo, SOURCE, TARGET, mask=region)
    np.testing.assert_array_equal(np.asarray(given.image), np.asarray(unset.image))


@pytest.mark.parametrize("backbone", list(CASES))
def test_the_methods_hold_the_latent_outside_the_region_at_the_photos(plugins, photo, region, backbone):
    b = plugins.backbone(backbone).load(device="cpu")
    method = plugins.edit_method(b.default_method)()
    z0 = b.encode_image(pil_to_tensor(photo)).float()
    inside = pil_to_tensor(region.convert("RGB"))[:, :1] * 0.5 + 0.5
    request = EditRequest(backbone=b, source_prompt=SOURCE, target_prompt=TARGET, z0=z0, steps=CASES[backbone]["steps"],
                          seed=1, region=inside, source_image=pil_to_tensor(photo))
    confined, free = method.edit(request), method.edit(EditRequest(**{**request.__dict__, "region": None}))
    half = z0.shape[-1] // 2
    torch.testing.assert_close(confined.latent[..., half:], z0[..., half:], rtol=0, atol=0)  # exactly the photo's
    assert not torch.equal(free.latent[..., half:], z0[..., half:])  # the whole-image edit moves it
    assert not torch.equal(confined.latent[..., :half], z0[..., :half])  # and the region is edited


def test_hold_outside_blends_by_the_share_outside():
    latent, source = torch.zeros(1, 1, 1, 2), torch.ones(1, 1, 1, 2)
    region = torch.tensor([[[[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]]]])  # (1, 1, 2, 4) -> latent (1, 2)
    outside = latent_outside(region, latent)
    assert outside.flatten().tolist() == [0.0, 0.75]  # area average: a quarter of the right pixel inside
    assert hold_outside(latent, source, outside).flatten().tolist() == [0.0, 0.75]
    assert hold_outside(latent, source, None) is latent  # the whole image: unchanged


def test_mask_words_give_the_region(photo):
    editor = Editor.from_config(EditConfig(backbone="tiny-random-sd15", **COMMON, steps=2))
    result = editor.edit(photo, SOURCE, TARGET, edit_area="masked",
                         options={"cross-attention": {"words_source": ["man"], "threshold_source": 0.9}})
    assert result.mask is not None
    mask = np.asarray(result.mask)
    out, src = np.asarray(result.image).astype(int), np.asarray(photo).astype(int)
    outside = mask < 127  # the composite keeps the photo wherever the mask is below one half
    assert outside.mean() > 0.5 and (mask > 128).any()  # the tiny model's word map: a part of the photo
    np.testing.assert_array_equal(out[outside], src[outside])
    assert not np.array_equal(out[mask > 128], src[mask > 128])


def test_masked_without_a_mask_is_one_sentence_before_the_model_loads(tmp_path, photo, monkeypatch):
    path = tmp_path / "photo.png"
    photo.save(path)

    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the check")

    monkeypatch.setattr(Editor, "from_config", no_load)
    run = CliRunner().invoke(main, ["edit", str(path), "-s", SOURCE, "-t", TARGET, "-o", str(tmp_path / "o.png"),
                                    "--backbone", "tiny-random-sd15", "--working-size", str(SIZE), "--steps", "2",
                                    "--edit-area", "masked"])
    assert run.exit_code == 1
    lines = run.output.strip().splitlines()
    assert len(lines) == 1 and "--mask FILE" in lines[0] and "--edit-area whole" in lines[0], run.output
    assert not (tmp_path / "o.png").exists()


def test_the_editor_refuses_a_masked_edit_without_a_region_in_one_sentence(tiny_backbone, plugins, photo):
    from spl_sdk.errors import ConfigError

    editor = Editor(tiny_backbone, EditConfig(backbone="tiny-random-sd15", **COMMON, steps=2), plugins)
    with pytest.raises(ConfigError, match=r"^--edit-area masked .* or use --edit-area whole\.$"):
        editor.plan(photo, SOURCE, TARGET, edit_area="masked")


def test_a_batch_row_takes_the_edit_area(tmp_path, photo, region):
    import json

    photo.save(tmp_path / "photo.png")
    region.save(tmp_path / "mask.png")
    row = {"id": "row", "image": "photo.png", "mask": "mask.png", "source_prompt": SOURCE, "target_prompt": TARGET,
           "options": {"edit_area": "masked"}}
    (tmp_path / "rows.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    run = CliRunner().invoke(main, ["batch", str(tmp_path / "rows.jsonl"), "-o", str(tmp_path / "out"), "-q",
                                    "--backbone", "tiny-random-sd15", "--working-size", str(SIZE), "--steps", "2",
                                    "--iterations", "3"])
    assert run.exit_code == 0, run.output
    _check_confined(Image.open(tmp_path / "out" / "images" / "row.png"), photo)


def test_edit_area_takes_the_area_grammar():
    assert EditConfig().edit_area == "whole"
    assert EditConfig(edit_area="masked").needs_region and not EditConfig(edit_area="masked").needs_mask
    with pytest.raises(ValueError, match="edit_area"):
        EditConfig(edit_area="inside")
    assert set(EditConfig.model_fields["edit_area"].annotation.__args__) == \
        set(EditConfig.model_fields["structure_area"].annotation.__args__)


def test_the_edit_help_lists_the_flag_with_the_masks():
    run = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["edit", "--help"])
    masks = run.output[run.output.index("Masks"):]
    assert "--edit-area" in masks and "[whole|masked]" in run.output
