"""Prompt token ids and word look-up on the backbone's real tokenizer."""

from __future__ import annotations

from typing import Any

from spl_sdk.errors import PromptError

DEFAULT_LENGTH = 77


def context_length(tokenizer: Any) -> int:
    """Number of token positions of the text encoder (77 for CLIP; HF's 'unset' sentinel means 77)."""
    length = int(getattr(tokenizer, "model_max_length", DEFAULT_LENGTH) or DEFAULT_LENGTH)
    return length if length <= 4096 else DEFAULT_LENGTH


def prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of a prompt with start/end tokens, unpadded, cut to the context length."""
    length = context_length(tokenizer)
    return list(tokenizer(prompt, truncation=True, max_length=length).input_ids)[:length]


def word_positions(tokenizer: Any, prompt: str, word: str, *, role: str = "prompt") -> list[int]:
    """Positions in the prompt's token sequence of every occurrence of ``word`` (one or more tokens)."""
    ids = prompt_ids(tokenizer, prompt)
    pattern = list(tokenizer(word, add_special_tokens=False).input_ids)
    positions: list[int] = []
    if pattern:
        for start in range(1, len(ids) - len(pattern) + 1):
            if ids[start:start + len(pattern)] == pattern:
                positions.extend(range(start, start + len(pattern)))
    if not positions:
        words = ", ".join(prompt.split()) or "none"
        raise PromptError(f"the word '{word}' is not in the {role} '{prompt}' (its words: {words}); "
                          f"use a word of that prompt.")
    return sorted(set(positions))
