"""Mask extractors: guided upsampling, sharpening, word-map semantics and user mask files (issue 4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from spl_backbones.tokenizer import build_clip_tokenizer
from spl_masks.extractors import CrossAttentionBilinearMask, CrossAttentionMask, word_mask
from spl_masks.file import FileMask
from spl_masks.sharpen import MARGIN, edge_pixels, gaussian_kernel, sharpen
from spl_masks.upsample import bilinear_upsample, guided_upsample, upsample_sizes
from spl_sdk import Plugins
from spl_sdk.components import AttentionMaps, MaskContext
from spl_sdk.errors import ConfigError, ImageError, PromptError


@pytest.fixture(scope="module")
def tokenizer():
    return build_clip_tokenizer()


def flat(h: int, w: int, value: float = 0.2) -> torch.Tensor:
    """A constant image: no edge pixels, so sharpening leaves masks unchanged."""
    return torch.full((1, 3, h, w), value)


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a & b).sum() / (a | b).sum()).item()


# ----------------------------------------------------------------------------- registration
def test_extractors_are_registered_through_the_entry_point():
    plugins = Plugins(env={"SPL_LOAD_PLUGINS": "masks"})
    assert plugins.mask_extractor("cross-attention") is CrossAttentionMask
    assert plugins.mask_extractor("cross-attention-bilinear") is CrossAttentionBilinearMask
    assert plugins.mask_extractor("file") is FileMask
    assert CrossAttentionMask.needs_first_pass and CrossAttentionBilinearMask.needs_first_pass
    assert not FileMask.needs_first_pass


# ----------------------------------------------------------------------------- upsampling
def test_upsample_sizes_double_then_land_exactly():
    assert upsample_sizes((16, 16), (512, 512)) == [(32, 32), (64, 64), (128, 128), (256, 256), (512, 512)]
    assert upsample_sizes((16, 11), (600, 400)) == [(32, 22), (64, 44), (128, 88), (256, 176), (512, 352), (600, 400)]
    assert upsample_sizes((16, 16), (16, 16)) == [(16, 16)]
    assert upsample_sizes((16, 16), (24, 40)) == [(24, 32), (24, 40)]


@pytest.mark.parametrize("low,size", [((16, 16), (128, 128)), ((16, 11), (150, 100)),
                                      ((12, 16), (190, 256)), ((16, 16), (72, 200))])
def test_guided_output_has_the_image_size(low, size):
    mask = (torch.rand(1, 1, *low, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    image = torch.rand(1, 3, *size) * 2 - 1
    out = guided_upsample(mask, image)
    assert out.shape == (1, 1, *size)
    assert 0 <= out.min() and out.max() <= 1
    assert bilinear_upsample(mask, image).shape == (1, 1, *size)


def ellipse_scene(size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """A bright textured ellipse on a dark textured background, and its true mask."""
    h, w = size
    canvas = Image.new("L", (w, h), 0)
    ImageDraw.Draw(canvas).ellipse((0.23 * w, 0.19 * h, 0.71 * w, 0.83 * h), fill=255)
    truth = torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255)[None, None]
    texture = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1)) * 0.3
    image = (-0.8 + texture) * (1 - truth) + (0.3 + texture) * truth
    return image, truth


def attention_of(truth: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Soft attention-like map: area average on the grid, then a 3x3 blur."""
    m = F.interpolate(truth, size=grid, mode="area")
    return F.avg_pool2d(F.pad(m, (1, 1, 1, 1), mode="replicate"), 3, stride=1)[0, 0]


@pytest.mark.parametrize("size,grid", [((256, 256), (16, 16)), ((192, 288), (11, 16))])
def test_guided_aligns_to_the_images_edges_better_than_bilinear(tokenizer, size, grid):
    image, truth = ellipse_scene(size)
    maps = torch.zeros(*grid, 77)
    maps[..., 5] = attention_of(truth, grid)  # "shape" in "a photo of a shape"
    context = MaskContext(source_image=image, source_prompt="a photo of a shape",
                          target_prompt="a photo of a shape", first_result=image, tokenizer=tokenizer,
                          attention=AttentionMaps(source=maps, target=maps, res=16))
    config = {"words_source": ["shape"]}
    guided = CrossAttentionMask(options=config).extract(context)
    plain = CrossAttentionBilinearMask(options=config).extract(context)
    assert guided.shape == plain.shape == truth.shape
    t = truth > 0.5
    iou_guided, iou_plain = iou(guided >= 0.5, t), iou(plain >= 0.5, t)
    assert iou_guided > iou_plain + 0.02, (iou_guided, iou_plain)
    # the guided mask follows the ellipse's outline: few uncertain pixels far from it
    assert ((guided - truth).abs() > 0.5).float().mean() < ((plain - truth).abs() > 0.5).float().mean()


# ----------------------------------------------------------------------------- word maps
def test_word_mask_averages_columns_normalizes_thresholds_and_unites():
    maps = torch.zeros(2, 3, 77)
    maps[..., 1] = torch.tensor([[4.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    maps[..., 2] = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 0.0]])  # word A = cols 1,2 -> [2,2,0]
    maps[..., 7] = torch.tensor([[0.0, 0.0, 0.0], [0.2, 0.1, 0.04]])  # word B, tiny values
    a = word_mask(maps, [[1, 2]], 0.5)
    assert a.shape == (1, 1, 2, 3)
    assert a[0, 0].tolist() == [[1, 1, 0], [0, 0, 0]]
    b = word_mask(maps, [[7]], 0.5)  # normalized by its own max: 0.1 / 0.2 = 0.5 passes
    assert b[0, 0].tolist() == [[0, 0, 0], [1, 1, 0]]
    assert word_mask(maps, [[1, 2], [7]], 0.5)[0, 0].tolist() == [[1, 1, 0], [1, 1, 0]]
    assert word_mask(maps, [[1]], 0.6)[0, 0].tolist() == [[1, 0, 0], [0, 0, 0]]
    assert word_mask(maps, [[30]], 0.5).sum() == 0  # a word with no attention gives nothing, no NaN


def semantic_context(tokenizer, source_prompt="a cat on grass", target_prompt="a big dog on grass",
                     first_result=None) -> MaskContext:
    """8x8 flat images and 8x8 maps: the bilinear extractor returns the binary word masks as-is."""
    src, tgt = torch.zeros(8, 8, 77), torch.zeros(8, 8, 77)
    src[:4, :, 2] = 1.0  # "cat" (column 2 of the source prompt): top half
    src[:, :2, 3] = 1.0  # column 3 of the source prompt ("on"): left quarter
    tgt[:, 6:, 3] = 1.0  # "dog" (column 3 of the target prompt): right quarter
    tgt[6:, :, 2] = 1.0  # column 2 of the target prompt ("big"): bottom rows
    return MaskContext(source_image=flat(8, 8), source_prompt=source_prompt, target_prompt=target_prompt,
                       first_result=first_result, tokenizer=tokenizer,
                       attention=AttentionMaps(source=src, target=tgt, res=8))


def run(tokenizer, **cfg) -> torch.Tensor:
    cfg = {k.removeprefix("mask_"): v for k, v in cfg.items()}  # the extractor's option names
    return CrossAttentionBilinearMask(options=cfg).extract(semantic_context(tokenizer))[0, 0]


def test_source_words_index_the_source_prompt_and_target_words_the_target(tokenizer):
    top = torch.zeros(8, 8)
    top[:4] = 1
    right = torch.zeros(8, 8)
    right[:, 6:] = 1
    assert torch.equal(run(tokenizer, mask_words_source=["cat"]), top)
    assert torch.equal(run(tokenizer, mask_words_target=["dog"]), right)
    # the final mask is the element-wise maximum of both sides
    assert torch.equal(run(tokenizer, mask_words_source="cat", mask_words_target="dog"), torch.maximum(top, right))
    # a source word is looked up in the source prompt only (not the reference's target look-up)
    with pytest.raises(PromptError, match="source prompt"):
        run(tokenizer, mask_words_source=["dog"])


def test_invert_and_threshold_apply_per_side(tokenizer):
    right = torch.zeros(8, 8)
    right[:, 6:] = 1
    inverted = run(tokenizer, mask_words_source=["cat"], mask_invert_source=True, mask_words_target=["dog"])
    expected = torch.ones(8, 8)
    expected[:4, :6] = 0  # 1 - top half, united with the right quarter
    assert torch.equal(inverted, expected)
    assert torch.equal(run(tokenizer, mask_words_target=["dog"], mask_invert_target=True), 1 - right)


def test_no_words_or_no_maps_are_user_errors(tokenizer):
    with pytest.raises(PromptError, match="mask words"):
        run(tokenizer)
    context = semantic_context(tokenizer)
    context.attention = None
    with pytest.raises(ConfigError, match="cross-attention maps"):
        CrossAttentionMask(options=dict(words_source=["cat"])).extract(context)


def test_check_rejects_a_missing_word_before_any_maps_exist(tokenizer):
    context = MaskContext(source_image=flat(8, 8), source_prompt="a cat on grass",
                          target_prompt="a big dog on grass", tokenizer=tokenizer)
    extractor = CrossAttentionMask(options=dict(words_source=["cat"], words_target=["cat"]))
    with pytest.raises(PromptError, match="'cat' is not in the target prompt"):
        extractor.check(context)
    CrossAttentionMask(options=dict(words_source=["cat"], words_target=["dog"])).check(context)


def test_target_mask_is_guided_by_the_first_result(tokenizer):
    seen = []

    class Spy(CrossAttentionMask):
        def upsample(self, mask, image):
            seen.append(image)
            return super().upsample(mask, image)

    first = flat(8, 8, -0.5)
    context = semantic_context(tokenizer, first_result=first)
    Spy(options=dict(words_source=["cat"], words_target=["dog"])).extract(context)
    assert seen[0] is context.source_image
    assert torch.equal(seen[1], first)


# ----------------------------------------------------------------------------- sharpening
def test_gaussian_kernel_matches_opencv():
    # cv2.getGaussianKernel(15, 0): sigma = 0.3 * ((15 - 1) * 0.5 - 1) + 0.8 = 2.6
    k = gaussian_kernel(15)
    assert k[0].item() == pytest.approx(0.004107253313193926, rel=1e-5)
    assert k[7].item() == pytest.approx(0.15400958896831815, rel=1e-5)
    assert k.sum().item() == pytest.approx(1.0)


# cv2.adaptiveThreshold(g, 255, ADAPTIVE_THRESH_GAUSSIAN_C, THRESH_BINARY, 15, 5) == 0 on the
# 24x32 image below, row-major bits, computed with opencv-python-headless 5.0 (426 pixels set)
CV2_EDGE_BITS = int(
    "e1c3878e0e3198e333636726cd16193494b4a4a562854a9586fffc55bdfff1d743fff69686fff4b258fff3a363f9f6"
    "398ef9f8f178fff3c002fffe18fefff00141ffff87e1fff78e8c61b8e733634606cf36193434b4a5a542854a9d8e1d1c71",
    16)


def test_edge_pixels_match_opencv_adaptive_gaussian_threshold():
    y, x = np.mgrid[0:24, 0:32]
    g = ((x * 37 + y * 91 + (x * y) % 17 * 9) % 256).astype(np.float32)
    g[6:18, 8:20] = 40
    image = torch.from_numpy(g)[None, None].repeat(1, 3, 1, 1) / 127.5 - 1
    expected = np.array([int(b) for b in bin(CV2_EDGE_BITS)[2:].zfill(24 * 32)]).reshape(24, 32)
    assert np.array_equal(edge_pixels(image)[0, 0].numpy(), expected.astype(bool))


def test_sharpen_maps_the_soft_tail_with_the_fourth_power():
    image = torch.ones(1, 3, 31, 31)
    image[..., 15, 15] = -1.0  # one black pixel on white: the only edge pixel
    edges = edge_pixels(image)
    assert edges.sum() == 1 and edges[0, 0, 15, 15]
    mask = torch.zeros(1, 1, 31, 31)
    mask[..., 15, 15] = 0.3
    mask[..., 0, 0], mask[..., 0, 1], mask[..., 0, 2], mask[..., 0, 3] = 0.1, 0.35, 0.5, 1.0
    out = sharpen(mask, image)
    t = 0.3 + MARGIN  # mean mask value at edge pixels + 20/255 = 0.3784
    assert out[0, 0, 0, 0].item() == pytest.approx(t * (0.1 / t) ** 4)  # 0.00185
    assert out[0, 0, 0, 1].item() == pytest.approx(t * (0.35 / t) ** 4)
    assert out[0, 0, 15, 15].item() == pytest.approx(t * (0.3 / t) ** 4)
    assert out[0, 0, 0, 2].item() == pytest.approx(0.5) and out[0, 0, 0, 3].item() == 1.0
    assert out[0, 0, 5, 5].item() == 0.0
    assert torch.equal(sharpen(mask, flat(31, 31)), mask)  # no edges: unchanged


def test_sharpened_guided_mask_of_an_extractor_stays_in_unit_range(tokenizer):
    image, truth = ellipse_scene((96, 128))
    maps = torch.zeros(12, 16, 77)
    maps[..., 5] = attention_of(truth, (12, 16))
    context = MaskContext(source_image=image, source_prompt="a photo of a shape", tokenizer=tokenizer,
                          attention=AttentionMaps(source=maps, target=maps, res=16))
    out = CrossAttentionMask(options=dict(words_source=["shape"], invert_source=True)).extract(context)
    assert out.shape == (1, 1, 96, 128) and 0 <= out.min() and out.max() <= 1
    assert out[..., 48, 60] < 0.1 and out[..., 5, 5] > 0.9  # inverted: the ellipse is out


# ----------------------------------------------------------------------------- file masks
def file_context(h: int = 60, w: int = 90, **extra) -> MaskContext:
    return MaskContext(source_image=flat(h, w), extra=extra)


def test_file_mask_uses_a_non_opaque_alpha_channel_resized(tmp_path):
    rgba = Image.new("RGBA", (30, 20), (0, 0, 0, 0))  # black RGB everywhere: luminance would say 0
    ImageDraw.Draw(rgba).rectangle((15, 0, 29, 19), fill=(0, 0, 0, 255))
    path = tmp_path / "alpha.png"
    rgba.save(path)
    out = FileMask(mask_file=path).extract(file_context())
    assert out.shape == (1, 1, 60, 90)
    assert out[..., :, :40].max() < 0.05 and out[..., :, 50:].min() > 0.95


def test_file_mask_with_opaque_alpha_or_gray_uses_luminance(tmp_path):
    rgba = Image.new("RGBA", (45, 30), (0, 0, 0, 255))
    ImageDraw.Draw(rgba).rectangle((0, 0, 44, 14), fill=(255, 255, 255, 255))
    rgba.save(tmp_path / "opaque.png")
    gray = Image.new("L", (300, 200), 0)
    ImageDraw.Draw(gray).rectangle((0, 0, 299, 99), fill=255)
    gray.save(tmp_path / "gray.jpg", quality=95)
    for name in ("opaque.png", "gray.jpg"):
        out = FileMask(mask_file=tmp_path / name).extract(file_context())
        assert out.shape == (1, 1, 60, 90)
        assert out[..., :25, :].min() > 0.9 and out[..., 35:, :].max() < 0.1


def test_drawn_mask_in_context_extra_wins_over_the_file(tmp_path):
    Image.new("L", (10, 10), 0).save(tmp_path / "black.png")
    drawn = Image.new("LA", (9, 6), (0, 0))
    ImageDraw.Draw(drawn).rectangle((0, 0, 8, 2), fill=(0, 255))
    out = FileMask(mask_file=tmp_path / "black.png").extract(file_context(mask=drawn))
    assert out.shape == (1, 1, 60, 90)
    assert out[..., :25, :].min() > 0.9 and out[..., 35:, :].max() < 0.1


def test_file_mask_errors_name_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="mask_file"):
        FileMask().extract(file_context())
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageError, match="bad.png"):
        FileMask(mask_file=bad).extract(file_context())
    with pytest.raises(ImageError, match="does not exist"):
        FileMask(mask_file=tmp_path / "missing.png").extract(file_context())


def test_mask_resize_keeps_proportions_of_a_non_square_mask(tmp_path):
    mask = Image.new("L", (200, 100), 0)
    ImageDraw.Draw(mask).ellipse((50, 25, 150, 75), fill=255)
    mask.save(tmp_path / "m.png")
    out = FileMask(mask_file=tmp_path / "m.png").extract(file_context(50, 100))
    assert out.mean().item() == pytest.approx(math.pi * 25 * 12.5 / 5000, abs=0.02)


# ----------------------------------------------------------------------------- a real run
@pytest.mark.slow
def test_infedit_maps_from_tiny_random_give_a_full_size_mask(tiny_backbone, plugins):
    """Collect 16-px maps with the unified (InfEdit) controller on the tiny UNet, then extract at full size."""
    from spl_methods.infedit import LAYOUT, Guidance, prompts_for, sample
    from spl_sdk.components import EditMethod
    from spl_sdk.geometry import resize as resize_image
    from spl_sdk.geometry import working_shape

    bb = tiny_backbone
    source_prompt, target_prompt = "a marshmallow on a campfire", "a burnt Marshmallow, on a big campfire"
    options = {"words_source": ["marshmallow"], "words_target": ["burnt", "campfire"]}
    image = torch.rand(1, 3, 300, 225, generator=torch.Generator().manual_seed(0)) * 2 - 1
    work = working_shape(300, 225, 256, bb.vae_scale_factor)
    assert work == (256, 192)
    controller = plugins.attention_controller("unified")(
        backbone=bb, source_prompt=source_prompt, target_prompt=target_prompt, num_steps=3)
    cond = bb.encode_prompts(prompts_for(source_prompt, target_prompt))
    with torch.no_grad():
        z0 = bb.encode_image(resize_image(image, work)).float()
        with EditMethod.controlling(controller, LAYOUT):
            out = sample(bb, controller, z0, cond, steps=3, original_steps=50,
                         guidance=Guidance(1.0, 2.0), seed=0)
        first = resize_image(bb.decode_latents(out.latent).float(), (300, 225))
    maps = controller.attention_maps(16)
    assert maps.source.shape == maps.target.shape == (16, 12, 77)  # long side 16, aspect kept
    # averages of softmax rows: each source pixel's attention over the 77 tokens sums to 1; the
    # target's refined rows mix source and target columns (Prompt-to-Prompt), so only about 1
    assert torch.allclose(maps.source.sum(-1), torch.ones(16, 12), atol=1e-4)
    assert torch.allclose(maps.target.sum(-1), torch.ones(16, 12), atol=0.05) and maps.target.min() >= 0
    assert not torch.equal(maps.source, maps.target)
    context = MaskContext(source_image=image, source_prompt=source_prompt, target_prompt=target_prompt,
                          first_result=first, attention=maps, tokenizer=bb.tokenizer)
    extractor = plugins.mask_extractor("cross-attention")(options=options)
    extractor.check(context)
    mask = extractor.extract(context)
    assert mask.shape == (1, 1, 300, 225)
    assert torch.isfinite(mask).all() and 0 <= mask.min() and mask.max() <= 1
    assert mask.max() > 0.5  # each word map's peak passes its own threshold
