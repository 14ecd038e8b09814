"""The offline CLIP tokenizer gives Stable Diffusion 1.x's ids (NOTES.md: built from open_clip's merges)."""

from __future__ import annotations

import pytest

from spl_backbones.diffusers_backbone import load_clip_tokenizer, save_tokenizer
from spl_backbones.tokenizer import build_clip_tokenizer, byte_symbols

SENTENCE = "A grayscale portrait of an old man, wearing glasses! 12 dogs & cats' tails (café)"


@pytest.fixture(scope="module")
def tokenizer():
    return build_clip_tokenizer()


def test_ids_are_those_of_stable_diffusion(tokenizer):
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(tokenizer) == 49408 and tokenizer.model_max_length == 77


def test_padding_to_77_uses_the_end_token(tokenizer):
    ids = tokenizer("a photo of a cat", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77 and ids[6:] == [49407] * 71


def test_long_sentence_matches_open_clip_which_pads_with_zero(tokenizer):
    import open_clip  # a required dependency: it ships the BPE merges
    reference = open_clip.get_tokenizer("ViT-L-14")([SENTENCE])[0].tolist()
    ours = tokenizer(SENTENCE, padding="max_length", max_length=77).input_ids
    n = len(tokenizer(SENTENCE).input_ids)
    assert n > 20
    assert ours[:n] == reference[:n]
    assert reference[n:] == [0] * (77 - n) and ours[n:] == [49407] * (77 - n)


def test_byte_symbols_follow_clip_byte_order():
    from open_clip.tokenizer import bytes_to_unicode

    assert byte_symbols() == list(bytes_to_unicode().values())


def test_saved_as_vocab_and_merges_loads_back_with_the_same_ids(tokenizer, tmp_path):
    save_tokenizer(tokenizer, tmp_path)
    assert {"vocab.json", "merges.txt"} <= {p.name for p in tmp_path.iterdir()}
    assert not (tmp_path / "tokenizer.json").exists()  # as in SD repositories
    loaded = load_clip_tokenizer(str(tmp_path))
    assert loaded(SENTENCE).input_ids == tokenizer(SENTENCE).input_ids
    assert loaded.model_max_length == 77 and loaded.pad_token_id == 49407


def test_missing_tokenizer_files_raise_instead_of_a_stub(tmp_path):
    # transformers 5 silently returns a 2-token tokenizer for an empty folder.
    with pytest.raises(OSError, match="no tokenizer files"):
        load_clip_tokenizer(str(tmp_path))
