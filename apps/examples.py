"""The bundled example photos with prompts for the typical edits, loadable with one click."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


@dataclass(frozen=True)
class Example:
    """A photo, its two prompts and the config fields the edit needs beyond the defaults."""

    key: str
    title: str
    kind: str
    file: str
    source_prompt: str
    target_prompt: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        """Where the photo lies in the installed package."""
        return EXAMPLES_DIR / self.file


EXAMPLES: tuple[Example, ...] = (
    Example("old_man", "Old man in color", "Recoloring", "old_man.png",
            "a grayscale photo of an old man", "a colorful photo of an old man"),
    Example("woman", "Portrait at sunset", "Relighting", "woman.png",
            "a painting of a woman with flowing blonde hair under a starry night sky",
            "a painting of a woman with flowing blonde hair in warm golden sunset light"),
    Example("cats", "Cats in winter", "Season change", "cats.png",
            "a photo of two cats playing on a grassy field",
            "a photo of two cats playing on a snowy field in winter"),
    # masked edit: color kept outside the marshmallow (CPL on the inverted word mask)
    Example("marshmallow", "Pink marshmallow", "Masked edit", "marshmallow.jpg",
            "a white marshmallow on a stick", "a pink marshmallow on a stick",
            {"color_loss": "cpl", "color_area": "masked",
             "options": {"mask-extractor/cross-attention": {"words_source": ["marshmallow"],
                                                  "words_target": ["marshmallow"],
                                                  "invert_source": True, "invert_target": True}}}),
)


def by_key(key: str) -> Example:
    """The example called ``key``."""
    for example in EXAMPLES:
        if example.key == key:
            return example
    raise KeyError(f"no example '{key}'; known: {', '.join(e.key for e in EXAMPLES)}")
