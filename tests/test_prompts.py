"""Prompt words -> token positions on the real CLIP tokenizer (mask, blend and re-weight words)."""

from __future__ import annotations

import pytest

from spl_backbones.tokenizer import build_clip_tokenizer
from spl_sdk.errors import PromptError
from spl_sdk.prompts import prompt_words, word_positions, words_positions


@pytest.fixture(scope="module")
def tokenizer():
    return build_clip_tokenizer()


def ids(tokenizer, text: str, special: bool = True) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special).input_ids)


def test_single_token_word_column_holds_its_id(tokenizer):
    prompt = "a marshmallow on a campfire"
    cols = word_positions(tokenizer, prompt, "marshmallow")
    assert cols == [2]  # 0 is the start token
    assert ids(tokenizer, prompt)[2] == ids(tokenizer, "marshmallow", False)[0] == 28530


@pytest.mark.parametrize("prompt", ["A Marshmallow, on a campfire.", "a MARSHMALLOW,on a campfire"])
@pytest.mark.parametrize("word", ["marshmallow", "Marshmallow", "Marshmallow,", " marshmallow "])
def test_capitals_and_punctuation_match(tokenizer, prompt, word):
    assert word_positions(tokenizer, prompt, word) == [2]


def test_multi_token_word_gives_all_its_columns(tokenizer):
    prompt = "a grayscale portrait of an old man"
    full = ids(tokenizer, prompt)
    gray = word_positions(tokenizer, prompt, "grayscale")
    assert gray == [2, 3]  # "grayscale" is two BPE tokens
    assert [full[c] for c in gray] == ids(tokenizer, "grayscale", False)
    assert word_positions(tokenizer, prompt, "Old Man") == [7, 8]  # two words, one mask word


def test_every_occurrence_counts(tokenizer):
    assert word_positions(tokenizer, "a red car and a red house", "red") == [2, 6]


def test_words_positions_one_list_per_word_skipping_blanks(tokenizer):
    out = words_positions(tokenizer, "a cat and a dog", ["cat", " ", "dog"], side="target")
    assert out == [[2], [5]]


def test_unknown_word_error_lists_the_prompts_words(tokenizer):
    with pytest.raises(PromptError) as err:
        word_positions(tokenizer, "a photo of a Cat.", "dog", side="target")
    message = str(err.value)
    assert "'dog'" in message and "target prompt" in message
    assert "a, photo, of, cat" in message


def test_part_of_a_token_is_not_a_match(tokenizer):
    # "campfire" is one token; "fire" alone is another id and must not match inside it
    with pytest.raises(PromptError):
        word_positions(tokenizer, "a marshmallow on a campfire", "fire")


def test_word_past_the_token_limit_is_an_error(tokenizer):
    prompt = " ".join(["big"] * 80) + " marshmallow"
    with pytest.raises(PromptError, match="77-token limit"):
        word_positions(tokenizer, prompt, "marshmallow")
    assert max(word_positions(tokenizer, prompt, "big")) == 75  # column 76 is the end token


def test_empty_word_is_an_error(tokenizer):
    with pytest.raises(PromptError, match="empty"):
        word_positions(tokenizer, "a cat", ",")


def test_prompt_words_are_distinct_and_lowercase():
    assert prompt_words("A cat, a Dog's toy.") == ["a", "cat", "dog's", "toy"]
