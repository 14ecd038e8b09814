"""Mask words -> token columns of the 77-token attention maps, matched on real tokenizer ids."""

from __future__ import annotations

import re
import string
from typing import Any

from spl_sdk.errors import PromptError

_WORD = re.compile(r"[\w'-]+")


def prompt_words(prompt: str) -> list[str]:
    """The distinct words of a prompt in order, for error messages that suggest valid mask words."""
    seen: dict[str, None] = {}
    for w in _WORD.findall(prompt):
        seen.setdefault(w.lower(), None)
    return list(seen)


def _ids(tokenizer: Any, text: str, *, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special).input_ids)


def _find_all(haystack: list[int], needle: list[int]) -> list[int]:
    n = len(needle)
    return [i for i in range(len(haystack) - n + 1) if haystack[i:i + n] == needle]


def word_columns(tokenizer: Any, prompt: str, word: str, *, side: str = "source") -> list[int]:
    """Positions of the word's tokens in the prompt's token sequence (0 is the start token).

    The word is tokenised alone, without start/end tokens, and that id
    sub-sequence is searched in the prompt's ids: the CLIP tokenizer splits
    punctuation off and lowercases, so "Marshmallow" matches "a marshmallow,"
    and a multi-token word ("grayscale" -> 2 ids) yields all its columns.
    Every occurrence counts; positions past the tokenizer's length limit are
    dropped because the attention maps have no column for them.
    """
    cleaned = word.strip().strip(string.punctuation + string.whitespace)
    words = ", ".join(prompt_words(prompt)) or "(none)"
    if not cleaned:
        raise PromptError(f"mask word {word!r} of the {side} prompt is empty; use words of the "
                          f"{side} prompt such as: {words}.")
    needle = _ids(tokenizer, cleaned, special=False)
    ids = _ids(tokenizer, prompt, special=True)
    starts = _find_all(ids, needle) if needle else []
    if not starts:
        raise PromptError(f"mask word {cleaned!r} is not in the {side} prompt {prompt!r}; "
                          f"use one of its words: {words}.")
    limit = int(getattr(tokenizer, "model_max_length", 77) or 77)
    limit = limit if limit <= 4096 else 77  # transformers' "unset" sentinel is ~1e30
    columns = [s + k for s in starts for k in range(len(needle)) if s + k < limit - 1]
    if not columns:
        raise PromptError(f"mask word {cleaned!r} lies past the {limit}-token limit of the {side} "
                          f"prompt; shorten the prompt or move the word forward.")
    return columns


def words_columns(tokenizer: Any, prompt: str, words: list[str], *,
                  side: str = "source") -> list[list[int]]:
    """Token columns for each mask word of one prompt (one list per word)."""
    return [word_columns(tokenizer, prompt, w, side=side) for w in words if w.strip()]
