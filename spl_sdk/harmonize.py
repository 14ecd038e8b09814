"""Harmonization result and vocabulary (docs/method.md section 6), shared by every harmonizer.

A harmonizer looks at a composite (an object pasted onto a background) and its
foreground mask, names the object and picks style words for the foreground and
the background from a fixed vocabulary: at most one word per category, a
brightness word always included. The source prompt describes the object as it
looks now, the target prompt as it should look on this background.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from PIL import Image, ImageOps
from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

from spl_sdk.text import neutralize

# docs/method.md section 6, category by category, in the order words appear in a prompt.
# Brightness words are listed from the brightest to the darkest. The words are the method's
# own (they go into prompts), so 'greyscale' keeps that spelling.
VOCABULARY: dict[str, tuple[str, ...]] = {
    "brightness": ("dazzling", "bright", "dim", "dull", "shaded", "shadowed"),
    "weather": ("cloudy", "sunny", "rainy", "snowy", "foggy", "windy", "stormy", "clear", "misty"),
    "temperature": ("hot", "warm", "cool", "cold", "icy"),
    "season": ("spring", "summer", "autumn", "winter"),
    "time": ("dawn", "sunrise", "daylight", "twilight", "sunset", "dusk", "dark", "night"),
    "tone": ("greyscale", "neon", "golden", "white", "blue", "green", "yellow", "orange", "red", "earthy"),
    "environment": ("city", "rural", "lake", "ocean", "mountain", "forest", "desert", "grassland",
                    "sky", "space", "indoor", "street"),
}
# The harmonizing edit (docs/method.md section 6): SPL keeps every edge of the whole image, CPL
# keeps the background's colors only, so the foreground's light and tone may move.
EDIT_SETTINGS: dict[str, str] = {"structure_loss": "spl", "structure_area": "whole",
                                 "color_loss": "cpl", "color_area": "masked"}

CATEGORY_OF: dict[str, str] = {word: cat for cat, words in VOCABULARY.items() for word in words}
CATEGORIES: tuple[str, ...] = tuple(VOCABULARY)


class VocabularyError(ValueError):
    """A word list that breaks the docs/method.md section 6 rules (pydantic turns it into a ValidationError)."""


def vocabulary_text() -> str:
    """The vocabulary as 'category: word, word, ...' lines, for prompts and help texts."""
    return "\n".join(f"- {cat}: {', '.join(words)}" for cat, words in VOCABULARY.items())


def _as_words(words: str | Iterable[str]) -> list[str]:
    if isinstance(words, str):
        words = words.replace(",", " ").split()
    return [str(w).strip().lower() for w in words if str(w).strip()]


def check_words(words: str | Iterable[str], region: str = "word list") -> list[str]:
    """Validate style words and return them in category order; raises VocabularyError naming the fix."""
    words = _as_words(words)
    unknown = [w for w in words if w not in CATEGORY_OF]
    if unknown:
        raise VocabularyError(
            f"{region}: {', '.join(repr(w) for w in unknown)} not in the harmonization vocabulary; "
            f"use only these words (docs/method.md section 6):\n{vocabulary_text()}")
    seen: dict[str, str] = {}
    for w in words:
        cat = CATEGORY_OF[w]
        if cat in seen and seen[cat] != w:
            raise VocabularyError(
                f"{region}: two {cat} words ({seen[cat]!r} and {w!r}); keep at most one word "
                f"per category.")
        seen[cat] = w
    if "brightness" not in seen:
        raise VocabularyError(
            f"{region}: no brightness word; include exactly one of "
            f"{', '.join(VOCABULARY['brightness'])}.")
    return [seen[cat] for cat in CATEGORIES if cat in seen]


def background_mask(foreground: Image.Image) -> Image.Image:
    """The inverted foreground mask: the area where CPL keeps the colors (white = background)."""
    return ImageOps.invert(foreground.convert("L"))


class Harmonization(BaseModel):
    """What a harmonizer returns: the object, style words per region and the two prompts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    foreground_object: str = Field(
        min_length=1, max_length=60,
        description="The pasted object in a few plain words, e.g. 'cat' or 'red car'.")
    foreground_words: list[str] = Field(
        description="Style words for the object's current look, one per category at most, brightness included.")
    background_words: list[str] = Field(
        description="Style words for the background's look, one per category at most, brightness included.")

    @field_validator("foreground_object", mode="before")
    @classmethod
    def _object(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = " ".join(value.split())
            if any(ch in value for ch in "{}\"<>") or neutralize(value) != value:  # ESC, C1, bidi
                raise VocabularyError(f"foreground_object {value!r} must be plain words, e.g. 'cat'.")
        return value

    @field_validator("foreground_words", "background_words", mode="before")
    @classmethod
    def _words(cls, value: Any, info: Any) -> Any:
        if isinstance(value, (str, list, tuple)):
            return check_words(value, info.field_name)
        return value

    @computed_field  # type: ignore[prop-decorator]
    @property
    def source_prompt(self) -> str:
        """'<foreground words> <object>': the composite as it is."""
        return " ".join([*self.foreground_words, self.foreground_object])

    @computed_field  # type: ignore[prop-decorator]
    @property
    def target_prompt(self) -> str:
        """'<background words> <object>': the object lit and toned like its background."""
        return " ".join([*self.background_words, self.foreground_object])
