"""Registration of edits that moved (spl_sdk.align): known warps recovered, aligned edits untouched, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from moved_edits import DRIFTS, Drift, blurred, moved, photo, psnr_interior, recolor
from PIL import Image

from spl_sdk.align import AlignmentError, align, describe
from spl_sdk.errors import ConfigError
from spl_sdk.imageio import pil_to_tensor, tensor_to_pil

SIZE = (384, 256)


@pytest.fixture(scope="module")
def pair():
    """A photo and its clean edit (recolored and blurred, not moved)."""
    src = photo("cats.png", SIZE)
    return src, blurred(recolor(src), 1.5)


@pytest.mark.parametrize("case", ["shift", "zoom-in", "zoom-out", "rotate"])
def test_known_similarity_is_recovered(pair, case: str) -> None:
    src, edit = pair
    drift = DRIFTS[case]
    warped = moved(edit, drift)
    result = align(pil_to_tensor(src), pil_to_tensor(warped))
    info, unit = result.info, max(SIZE) / 512
    assert "affine" in info["mode"]
    assert info["zoom"] == pytest.approx(drift.zoom, abs=0.003)
    assert info["rotation"] == pytest.approx(drift.rotation, abs=0.08)
    assert info["shift_x"] == pytest.approx(drift.shift[0] * unit, abs=0.25)
    assert info["shift_y"] == pytest.approx(drift.shift[1] * unit, abs=0.25)
    # the aligned edit is the clean edit again, up to resampling
    assert psnr_interior(warped, edit) < 36
    assert psnr_interior(tensor_to_pil(result.image), edit) > 42
    assert result.image.shape == (1, 3, SIZE[1], SIZE[0]) and result.coverage.shape == (1, 1, SIZE[1], SIZE[0])
    assert "zoom" in describe(info) and "\n" not in describe(info)


def test_smooth_bend_is_taken_out_by_the_flow(pair) -> None:
    src, edit = pair
    warped = moved(edit, Drift(bend=2.0))
    result = align(pil_to_tensor(src), pil_to_tensor(warped))
    assert result.info["mode"].endswith("flow") and result.info["residual_px"] > 0.5
    affine_only = align(pil_to_tensor(src), pil_to_tensor(warped), mode="affine")
    assert "flow" not in affine_only.info["mode"]
    assert psnr_interior(tensor_to_pil(result.image), edit) > psnr_interior(tensor_to_pil(affine_only.image), edit) + 2


@pytest.mark.parametrize("edit_of", ["itself", "clean edit"])
def test_aligned_edit_is_returned_exactly(pair, edit_of: str) -> None:
    src, edit = pair
    edited = pil_to_tensor(src if edit_of == "itself" else edit)
    result = align(pil_to_tensor(src), edited)
    assert result.info["mode"] == "none"
    assert torch.equal(result.image, edited) and bool((result.coverage == 1).all())


def test_off_only_resizes(pair) -> None:
    src, edit = pair
    result = align(pil_to_tensor(src), pil_to_tensor(moved(edit, DRIFTS["shift"])), mode="off")
    assert result.info["mode"] == "off"
    assert torch.equal(result.image, pil_to_tensor(moved(edit, DRIFTS["shift"])))
    with pytest.raises(ConfigError, match="align must be one of"):
        align(pil_to_tensor(src), pil_to_tensor(edit), mode="nope")


def test_edit_of_another_size_and_aspect_is_aligned() -> None:
    # a model asked for 1200x800 returns 1184x880: the photo stretched to its own size, and moved
    # (here at half those sizes, to keep the test fast; benchmarks/align.py runs the full ones)
    src = photo("woman.png", (600, 400))
    clean = blurred(recolor(src), 1.5)
    edit = moved(clean, Drift(shift=(2.0, -1.5)), size=(592, 440))
    result = align(pil_to_tensor(src), pil_to_tensor(edit))
    assert result.image.shape == (1, 3, 400, 600)
    assert result.info["edited_size"] == [592, 440] and "affine" in result.info["mode"]
    assert psnr_interior(tensor_to_pil(result.image), clean) > 38


def test_uncovered_border_is_marked_and_filled(pair) -> None:
    src, edit = pair
    result = align(pil_to_tensor(src), pil_to_tensor(moved(edit, Drift(zoom=1.1))), mode="affine")
    cov = result.coverage[0, 0]
    assert float(cov[0].mean()) < 0.05 and float(cov[SIZE[1] // 2, SIZE[0] // 2]) == 1.0
    assert 0.75 < result.info["coverage"] < 0.9
    # the uncovered border holds the source's structure in the edit's colors, not a smear
    border = tensor_to_pil(result.image).crop((0, 0, SIZE[0], 8))
    assert np.asarray(border, np.float32).std(axis=1).mean() > 5


def test_unrelated_images_are_refused_in_one_line(pair) -> None:
    src, _ = pair
    other = photo("marshmallow.jpg", SIZE)
    with pytest.raises(AlignmentError) as info:
        align(pil_to_tensor(src), pil_to_tensor(other))
    message = str(info.value)
    assert "do not match" in message and "--align off" in message and "\n" not in message


def test_edit_covering_under_half_is_refused(pair) -> None:
    src, edit = pair
    crop = edit.crop((SIZE[0] * 3 // 10, 0, SIZE[0] * 7 // 10, SIZE[1]))  # the middle 40 %
    with pytest.raises(AlignmentError, match=r"covers only 4\d % of SOURCE \(under half\)"):
        align(pil_to_tensor(src), pil_to_tensor(crop))


def test_flat_source_has_nothing_to_align_on() -> None:
    flat = torch.full((1, 3, 64, 96), 0.2)
    edited = torch.rand(1, 3, 64, 96) * 2 - 1
    result = align(flat, edited)
    assert result.info["mode"] == "none" and "no structure" in result.info["reason"]
    assert torch.equal(result.image, edited)


def test_a_repainted_region_does_not_drag_the_warp(pair) -> None:
    # a third of the edit is new content (another photo), the rest moved by a known shift
    src, edit = pair
    drift = Drift(shift=(3.0, -2.0))
    warped = np.asarray(moved(edit, drift)).copy()
    other = np.asarray(photo("marshmallow.jpg", SIZE))
    warped[:, : SIZE[0] // 3] = other[:, : SIZE[0] // 3]
    info = align(pil_to_tensor(src), pil_to_tensor(Image.fromarray(warped)), mode="affine").info
    unit = max(SIZE) / 512
    assert info["shift_x"] == pytest.approx(3.0 * unit, abs=0.3)
    assert info["shift_y"] == pytest.approx(-2.0 * unit, abs=0.3)
    assert info["zoom"] == pytest.approx(1.0, abs=0.005) and abs(info["rotation"]) < 0.15


def test_edit_cropped_to_another_aspect_is_found() -> None:
    # a model that kept the scale and cropped the sides (3:2 photo -> 4:3 edit) instead of stretching
    src = photo("woman.png", (384, 256))
    clean = blurred(recolor(src), 1.0)
    crop = clean.crop((21, 0, 363, 256))  # 342 x 256, centered
    result = align(pil_to_tensor(src), pil_to_tensor(crop))
    cov = result.coverage[0, 0]
    assert "affine" in result.info["mode"] and 0.85 < result.info["coverage"] < 0.92
    assert float(cov[:, :15].mean()) < 0.1 and float(cov[2:-2, 30:-30].min()) > 0.99
    got = tensor_to_pil(result.image).crop((30, 0, 354, 256))
    assert psnr_interior(got, clean.crop((30, 0, 354, 256))) > 38


def test_raft_without_its_weights_offline_is_one_clear_error(pair, monkeypatch, tmp_path) -> None:
    import urllib.error

    from spl_sdk.errors import ModelNotFoundError

    def offline(*_args, **_kwargs):
        raise urllib.error.URLError("no route to download.pytorch.org")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    src, edit = pair
    with pytest.raises(ModelNotFoundError) as info:
        align(pil_to_tensor(src), pil_to_tensor(moved(edit, DRIFTS["shift"])), mode="raft")
    message = str(info.value)
    assert "RAFT's weights" in message and str(tmp_path) in message and "--align flow" in message
    assert "\n" not in message


def test_raft_mode_runs_its_network_on_the_grid(pair, monkeypatch) -> None:
    # torchvision's small RAFT with random weights (no download here): the path runs end to end
    from spl_sdk.align import raft

    monkeypatch.setattr(raft, "_weights", lambda: None)
    torch.manual_seed(0)
    src, edit = pair
    result = align(pil_to_tensor(src), pil_to_tensor(moved(edit, DRIFTS["shift"])), mode="raft")
    assert result.info["mode"] == "affine+raft" and result.image.shape == (1, 3, SIZE[1], SIZE[0])
    assert np.isfinite(result.info["residual_px"])
