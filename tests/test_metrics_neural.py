"""Structure distance and CLIP score wired to tiny random networks of the real classes (no download)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spl_sdk.metrics import neural
from spl_sdk.metrics.networks import tiny_random


@pytest.fixture(scope="module")
def nets():
    return tiny_random("cpu")


def _image(seed: int, size: int = 224) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_key_self_similarity_is_the_cosine_matrix_of_the_last_layers_keys(nets):
    image = _image(0)
    got = neural.key_self_similarity(nets.dino, image)
    # by hand: 0-255 values ImageNet-normalized (PIE-Bench's input), the last layer's input
    # hidden state, its pre-attention layer norm, the key projection, cosine similarity
    x = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with torch.no_grad():
        out = nets.dino(pixel_values=((x - mean) / std)[None], output_hidden_states=True)
        last = nets.dino.layers[-1]
        keys = last.attention.k_proj(last.layernorm_before(out.hidden_states[-2]))[0]
    unit = keys / keys.norm(dim=-1, keepdim=True)
    assert got.shape == (1 + 28 * 28, 1 + 28 * 28)  # class token + 28 x 28 patches of 8 px
    torch.testing.assert_close(got, unit @ unit.T, rtol=1e-4, atol=1e-5)


def test_structure_distance_is_zero_for_the_same_image_and_grows_with_change(nets):
    image = _image(1, 160)
    assert neural.structure_distance(nets.dino, image, image) == 0.0
    slightly = image.copy()
    slightly[:40] = 255 - slightly[:40]
    other = _image(2, 160)
    small = neural.structure_distance(nets.dino, image, slightly)
    assert 0 < small
    assert neural.structure_distance(nets.dino, image, other) > 0


def test_clip_score_is_100_times_the_clamped_cosine_and_masks_black_out_the_rest(nets):
    from PIL import Image

    image = _image(3, 64)
    text = "a photo of a cat"

    def cosine() -> float:
        with torch.no_grad():
            img = nets.clip.encode_image(nets.clip_preprocess(Image.fromarray(image))[None])
            txt = nets.clip.encode_text(nets.clip_tokenizer([text]))
        return torch.nn.functional.cosine_similarity(img, txt).item()

    # flipping the text projection flips the cosine: one sign is scored, the other clamped to 0
    if cosine() < 0:
        nets.clip.text_projection.data.neg_()
    try:
        assert cosine() > 0
        assert neural.clip_score(nets, image, text) == pytest.approx(100 * cosine(), abs=1e-4)
        mask = np.zeros((64, 64), dtype=bool)
        mask[16:48, 16:48] = True
        blacked = (image * mask[..., None]).astype(np.uint8)
        assert neural.clip_score(nets, image, text, mask) == pytest.approx(
            neural.clip_score(nets, blacked, text), abs=1e-6)
        assert neural.clip_score(nets, image, text, mask) != pytest.approx(
            neural.clip_score(nets, image, text), abs=1e-6)
        nets.clip.text_projection.data.neg_()
        assert cosine() < 0 and neural.clip_score(nets, image, text) == 0.0
    finally:
        nets.clip.text_projection.data.copy_(tiny_random("cpu").clip.text_projection.data)
