"""Word-list settings as users type them: "a, b" for words, "red=2, blue=0.5" for word factors."""

from __future__ import annotations

from typing import Any


def comma_words(value: Any) -> Any:
    """A comma-separated text as a list of stripped words; any other value unchanged."""
    if isinstance(value, str):
        return [w.strip() for w in value.split(",") if w.strip()]
    return value


def word_factors(value: Any) -> Any:
    """A "word=factor, word=factor" text as {word: factor}; any other value unchanged."""
    if not isinstance(value, str):
        return value
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        word, _, factor = part.partition("=")
        try:
            out[word.strip()] = float(factor)
        except ValueError:  # also a part without '=' (float(""))
            raise ValueError(f"'{part}' must look like word=factor, e.g. 'red=2'") from None
    return out
