"""Prompt tokens and word look-up on the backbone's real tokenizer.

Shared by every plug-in that names prompt words: mask words (docs/method.md section 5),
local-blend words and re-weighted words (section 4).
"""

from __future__ import annotations

import re
import string
from typing import Any

from spl_sdk.errors import PromptError

DEFAULT_LENGTH = 77
_WORD = re.compile(r"[\w'-]+")


def context_length(tokenizer: Any) -> int:
    """Token positions of the text encoder (77 for CLIP; transformers' 'unset' sentinel means 77)."""
    length = int(getattr(tokenizer, "model_max_length", DEFAULT_LENGTH) or DEFAULT_LENGTH)
    return length if length <= 4096 else DEFAULT_LENGTH


def prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of a prompt with start/end tokens, unpadded, cut to the context length."""
    length = context_length(tokenizer)
    return list(tokenizer(prompt, truncation=True, max_length=length).input_ids)[:length]


def prompt_words(prompt: str) -> list[str]:
    """The distinct words of a prompt in order, for error messages that suggest valid words."""
    seen: dict[str, None] = {}
    for w in _WORD.findall(prompt):
        seen.setdefault(w.lower(), None)
    return list(seen)


def _find_all(haystack: list[int], needle: list[int]) -> list[int]:
    n = len(needle)
    return [i for i in range(len(haystack) - n + 1) if haystack[i:i + n] == needle]


def word_positions(tokenizer: Any, prompt: str, word: str, *, side: str = "source") -> list[int]:
    """Positions of the word's tokens in the prompt's token sequence (0 is the start token).

    The word is tokenized alone, without start/end tokens, and that id
    sub-sequence is searched in the prompt's ids: the CLIP tokenizer splits
    punctuation off and lowercases, so "Marshmallow" matches "a marshmallow,"
    and a multi-token word ("grayscale" -> 2 ids) yields all its positions.
    Every occurrence counts; positions past the context length are refused
    because the attention maps have no column for them.
    """
    cleaned = word.strip().strip(string.punctuation + string.whitespace)
    words = ", ".join(prompt_words(prompt)) or "(none)"
    if not cleaned:
        raise PromptError(f"word {word!r} of the {side} prompt is empty; use words of the "
                          f"{side} prompt such as: {words}.")
    needle = list(tokenizer(cleaned, add_special_tokens=False).input_ids)
    ids = list(tokenizer(prompt).input_ids)
    starts = _find_all(ids, needle) if needle else []
    if not starts:
        raise PromptError(f"word {cleaned!r} is not in the {side} prompt {prompt!r}; "
                          f"use one of its words: {words}.")
    limit = context_length(tokenizer)
    positions = sorted({s + k for s in starts for k in range(len(needle)) if s + k < limit - 1})
    if not positions:
        raise PromptError(f"word {cleaned!r} lies past the {limit}-token limit of the {side} "
                          f"prompt; shorten the prompt or move the word forward.")
    return positions


def words_positions(tokenizer: Any, prompt: str, words: list[str], *, side: str = "source") -> list[list[int]]:
    """One position list per non-blank word, in order (each word may span several tokens)."""
    return [word_positions(tokenizer, prompt, w, side=side) for w in words if w.strip()]
