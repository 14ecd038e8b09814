"""Token alignment (Needleman-Wunsch on real CLIP ids) and word look-up of the attention controllers."""

from __future__ import annotations

import pytest
import torch

from spl_attention.alignment import align_tokens, identity_alignment, needleman_wunsch
from spl_sdk.errors import PromptError
from spl_sdk.prompts import context_length, prompt_ids, word_positions

BOS, EOS = 49406, 49407


@pytest.fixture(scope="module")
def tokenizer():
    """The real SD 1.x CLIP tokenizer, built offline."""
    from spl_backbones.tokenizer import build_clip_tokenizer

    return build_clip_tokenizer()


def test_tokenizer_ids_are_sd_ids(tokenizer) -> None:
    assert prompt_ids(tokenizer, "a photo of a cat") == [BOS, 320, 1125, 539, 320, 2368, EOS]
    assert context_length(tokenizer) == 77


def test_needleman_wunsch_identical_and_substitution() -> None:
    assert needleman_wunsch([1, 2, 3], [1, 2, 3]) == [(0, 0), (1, 1), (2, 2)]
    # with gap 0 and mismatch -1 a substituted token is never paired with the one it replaces
    assert needleman_wunsch([1, 2, 3], [1, 9, 3]) == [(0, 0), (2, 2)]
    assert needleman_wunsch([], [1]) == []


def test_cat_on_mat_alignment(tokenizer) -> None:
    src = prompt_ids(tokenizer, "a cat on a mat")
    tgt = prompt_ids(tokenizer, "a black cat on a red mat")
    assert len(src) == 7 and len(tgt) == 9
    al = align_tokens(src, tgt, 77)
    # target: <bos> a black cat on a red mat <eos>; source: <bos> a cat on a mat <eos>
    expected = {0: 0, 1: 1, 3: 2, 4: 3, 5: 4, 7: 5, 8: 6}
    for j, i in expected.items():
        assert al.mapping[j] == i and al.alpha[j] == 1, j
        assert src[i] == tgt[j]
    assert al.alpha[2] == 0 and al.alpha[6] == 0  # "black" and "red" are new
    pad = torch.arange(9, 77)
    assert torch.equal(al.mapping[9:], pad) and torch.all(al.alpha[9:] == 1)
    assert al.mapping.shape == (77,) and al.alpha.shape == (77,)


def test_deleted_and_swapped_words(tokenizer) -> None:
    src = prompt_ids(tokenizer, "a black cat")
    tgt = prompt_ids(tokenizer, "a cat")
    al = align_tokens(src, tgt, 77)
    assert al.mapping[:4].tolist() == [0, 1, 3, 4] and al.alpha[:4].tolist() == [1, 1, 1, 1]
    swap = align_tokens(prompt_ids(tokenizer, "a cat"), prompt_ids(tokenizer, "a dog"), 77)
    assert swap.alpha[:4].tolist() == [1, 1, 0, 1]


def test_refine_formula() -> None:
    al = align_tokens([5, 6, 7], [5, 9, 6, 7], 6)
    assert al.mapping.tolist()[:4] == [0, 1, 1, 2] and al.alpha.tolist() == [1, 0, 1, 1, 1, 1]
    a_s, a_t = torch.rand(2, 3, 6), torch.rand(2, 3, 6)
    out = al.refine(a_s, a_t)
    for j in range(6):
        expect = a_t[..., j] if j == 1 else a_s[..., al.mapping[j]]
        assert torch.equal(out[..., j], expect)


def test_identity_alignment_copies_every_position() -> None:
    al = identity_alignment(77)
    a_s, a_t = torch.rand(4, 77), torch.rand(4, 77)
    assert torch.equal(al.refine(a_s, a_t), a_s)


def test_word_positions_use_token_ids(tokenizer) -> None:
    prompt = "A Hippopotamus on a mat, a red mat"
    assert word_positions(tokenizer, prompt, "hippopotamus") == [2, 3, 4]  # three BPE tokens
    assert word_positions(tokenizer, prompt, "a") == [1, 6, 9]
    assert word_positions(tokenizer, prompt, "mat") == [7, 11]
    assert word_positions(tokenizer, prompt, "red mat") == [10, 11]


def test_unknown_word_lists_prompt_words(tokenizer) -> None:
    with pytest.raises(PromptError, match=r"'dog' is not in the target prompt .*a, cat, on, mat"):
        word_positions(tokenizer, "a cat on a mat", "dog", side="target")
    with pytest.raises(PromptError):
        word_positions(tokenizer, "a cats", "cat")  # a different token than 'cats'
