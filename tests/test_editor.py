"""The editor end to end on the tiny-random-sd15 backbone (docs/method.md sections 2, 5 and 7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from spl_sdk.components import EditRequest
from spl_sdk.config import EditConfig
from spl_sdk.editor import Editor
from spl_sdk.errors import Canceled, ConfigError, PromptError, SplWarning
from spl_sdk.geometry import working_shape
from spl_sdk.imageio import pil_to_tensor

FAST = dict(backbone="tiny-random-sd15", working_size=128, steps=3, iterations=5)


@pytest.fixture
def editor(tiny_backbone, plugins) -> Editor:
    return Editor(tiny_backbone, EditConfig(**FAST), plugins)


@pytest.fixture
def photo(example_image) -> Image.Image:
    return example_image.resize((200, 136))  # non-square, not a multiple of 8


def test_equal_prompts_and_guidance_reproduce_the_vae_round_trip(tiny_backbone, plugins, example_image):
    """docs/method.md section 2 invariant, through the infedit method, the real UNet and controller."""
    source = pil_to_tensor(example_image.resize((128, 128)))
    z0 = tiny_backbone.encode_image(source).float()
    prompt = "a photo of an old man"
    controller = plugins.attention_controller("unified")(
        backbone=tiny_backbone, source_prompt=prompt, target_prompt=prompt, num_steps=4)
    seen: list[torch.Tensor] = []
    method = plugins.edit_method("infedit")()
    out = method.edit(EditRequest(
        backbone=tiny_backbone, source_prompt=prompt, target_prompt=prompt, z0=z0, controller=controller,
        steps=4, source_guidance=1.5, target_guidance=1.5, seed=0, original_steps=50,
        on_step=lambda i, n, x0: seen.append(x0)))
    assert controller.store.counts  # the controller was installed and saw the batch
    assert len(seen) == 4
    for x0 in seen:
        torch.testing.assert_close(x0, z0, atol=1e-5, rtol=0)
    round_trip = tiny_backbone.decode_latents(z0)
    torch.testing.assert_close(tiny_backbone.decode_latents(out.latent), round_trip, atol=1e-5, rtol=0)


def test_edit_returns_the_source_size_and_timings(editor, photo):
    calls: list[tuple[int, int]] = []
    result = editor.edit(photo, "a photo of an old man", "a photo of a smiling old man", opt_start=0.5,
                         callback=lambda step, total, preview: calls.append((step, total)))
    assert result.image.size == photo.size
    # three steps, then the loss-refine post-processor's five iterations (FAST iterations=5)
    assert calls == [(i, 8) for i in range(1, 9)]
    for phase in ("total", "unet", "vae", "optimization", "post_process"):
        assert result.timings[phase] > 0, phase
    assert result.metadata()["config"]["steps"] == 3
    assert result.mask is None


def test_working_shape_keeps_aspect_and_multiples_of_8():
    assert working_shape(136, 200, 128) == (88, 128)
    assert working_shape(2000, 1300, 512) == (512, 336)


def test_same_seed_same_output_and_another_seed_differs(editor, photo):
    args = (photo, "a photo of an old man", "a painting of an old man")
    a = np.asarray(editor.edit(*args).image)
    b = np.asarray(editor.edit(*args).image)
    c = np.asarray(editor.edit(*args, seed=1).image)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_structure_loss_pulls_the_result_towards_the_source_edges(editor, photo):
    from loss_sum import total_loss

    from spl_sdk.terms import build_terms

    args = (photo, "a photo of an old man", "a painting of an old man")
    free = editor.edit(*args, structure_loss=None)
    kept = editor.edit(*args, iterations=30)
    terms = build_terms(editor.plugins, EditConfig(**FAST), None)
    src = pil_to_tensor(photo)
    assert total_loss(terms, src, pil_to_tensor(kept.image)) < total_loss(terms, src, pil_to_tensor(free.image))


def test_prompt_over_the_token_limit_is_refused(editor, photo):
    with pytest.raises(PromptError, match="tokens long"):
        editor.edit(photo, "a photo " * 60, "a photo of a man")
    with pytest.raises(PromptError, match="empty"):
        editor.edit(photo, "a photo", "   ")


def test_lcm_steps_beyond_original_steps_are_refused_before_any_work(editor, photo, tiny_backbone,
                                                                    monkeypatch):
    encoded: list[int] = []
    monkeypatch.setattr(tiny_backbone, "encode_image", lambda *a: encoded.append(1))
    with pytest.raises(ConfigError, match=r"^steps \(60\) cannot exceed original_steps \(50\) of the LCM "
                                          r"schedule; .*--original-steps") as info:
        editor.edit(photo, "a photo", "a painting", steps=60)
    assert "\n" not in str(info.value) and not encoded  # refused before the VAE ran
    assert len(tiny_backbone.timesteps(60, latent_shape=(1, 4, 16, 16), original_steps=100)) == 60


def test_a_callback_returning_false_cancels(editor, photo):
    with pytest.raises(Canceled):
        editor.edit(photo, "a photo", "a painting", callback=lambda *a: False)


def test_loaded_fields_cannot_change_per_edit(editor, photo):
    with pytest.raises(ConfigError, match="backbone"):
        editor.edit(photo, "a photo", "a painting", backbone="lcm-dreamshaper-v7")
    with pytest.raises(ConfigError, match="steps"):
        editor.edit(photo, "a photo", "a painting", steps=0)


def test_masked_area_runs_two_passes_and_returns_the_mask(editor, photo):
    totals: set[int] = set()
    result = editor.edit(photo, "a photo of an old man", "a painting of an old man",
                         structure_area="masked", mask_words_source=["man"],
                         callback=lambda step, total, preview: totals.add(total))
    assert totals == {3 + 3 + 5}  # first pass for attention maps + final pass + post-processing
    assert result.mask is not None and result.mask.size == photo.size


def test_a_user_mask_is_used_without_a_first_pass(editor, photo):
    mask = Image.new("L", (50, 34), 0)
    mask.paste(255, (10, 10, 40, 30))
    totals: set[int] = set()
    result = editor.edit(photo, "a photo", "a painting", mask=mask, structure_area="masked",
                         callback=lambda step, total, preview: totals.add(total))
    assert totals == {3 + 5}  # one pass + post-processing
    assert result.mask.size == photo.size
    m = np.asarray(result.mask)
    assert m[0, 0] == 0 and m[68, 100] == 255


def test_edit_that_cannot_be_aligned_is_post_processed_as_it_is(tiny_backbone, plugins, photo):
    # the tiny backbone paints noise: nothing of the photo to register onto, so the edit warns
    # and goes on instead of failing after all its steps
    editor = Editor(tiny_backbone, EditConfig(**FAST), plugins)
    with pytest.warns(SplWarning, match="cannot align EDITED to SOURCE.*post-processed as it came out"):
        result = editor.edit(photo, "a photo of a man", "a painting of a man", align="auto")
    assert result.image.size == photo.size and result.config.align == "auto"
