"""Test helpers over the harmonization vocabulary (spl_sdk.harmonize): words by category, brightness order."""

from __future__ import annotations

from collections.abc import Iterable

from spl_sdk.harmonize import CATEGORY_OF, VOCABULARY, check_words


def words_by_category(words: Iterable[str]) -> dict[str, str]:
    """Map each (valid) word to its category: {'brightness': 'dim', 'tone': 'blue', ...}."""
    return {CATEGORY_OF[w]: w for w in check_words(words)}


def brightness_rank(word: str) -> int:
    """0 for the brightest brightness word ('dazzling') up to 5 for the darkest ('shadowed')."""
    return VOCABULARY["brightness"].index(word)
