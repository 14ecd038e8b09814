"""The harmonization vocabulary and result model (docs/method.md section 6)."""

from __future__ import annotations

import pytest
from PIL import Image
from pydantic import ValidationError
from vocabulary import brightness_rank, words_by_category

from spl_sdk.harmonize import (
    CATEGORY_OF,
    VOCABULARY,
    Harmonization,
    VocabularyError,
    background_mask,
    check_words,
)


def test_vocabulary_is_design_section_6_and_each_word_has_one_category():
    assert set(VOCABULARY) == {"brightness", "weather", "temperature", "season", "time", "tone",
                               "environment"}
    assert VOCABULARY["brightness"] == ("dazzling", "bright", "dim", "dull", "shaded", "shadowed")
    assert len(VOCABULARY["tone"]) == 10 and len(VOCABULARY["environment"]) == 12
    total = sum(len(words) for words in VOCABULARY.values())
    assert len(CATEGORY_OF) == total  # no word in two categories


def test_prompts_are_words_then_object_in_category_order():
    h = Harmonization(foreground_object="cat", foreground_words=["golden", "Dim"],
                      background_words="night, bright cool")
    assert h.foreground_words == ["dim", "golden"]
    assert h.background_words == ["bright", "cool", "night"]
    assert h.source_prompt == "dim golden cat"
    assert h.target_prompt == "bright cool night cat"
    assert h.model_dump()["target_prompt"] == "bright cool night cat"  # computed fields are dumped


def test_unknown_word_is_named_with_the_vocabulary():
    with pytest.raises(VocabularyError, match="'sparkly' not in the harmonization vocabulary") as info:
        check_words(["bright", "sparkly"], "foreground_words")
    assert "brightness: dazzling, bright" in str(info.value)


def test_two_words_of_one_category_are_rejected():
    with pytest.raises(VocabularyError, match="two brightness words .'bright' and 'dim'."):
        check_words(["bright", "dim"])
    with pytest.raises(ValidationError, match="two tone words"):
        Harmonization(foreground_object="cat", foreground_words=["dim", "red", "blue"],
                      background_words=["bright"])


def test_brightness_word_is_required():
    with pytest.raises(ValidationError, match="no brightness word"):
        Harmonization(foreground_object="cat", foreground_words=["warm"], background_words=["bright"])


def test_object_must_be_plain_words():
    with pytest.raises(ValidationError):
        Harmonization(foreground_object="  ", foreground_words=["dim"], background_words=["bright"])
    with pytest.raises(ValidationError, match="plain words"):
        Harmonization(foreground_object='cat"}', foreground_words=["dim"], background_words=["bright"])
    h = Harmonization(foreground_object="  old \n man ", foreground_words=["dim"], background_words=["dim"])
    assert h.source_prompt == "dim old man"


def test_helpers():
    assert words_by_category(["night", "dim"]) == {"brightness": "dim", "time": "night"}
    assert brightness_rank("dazzling") == 0 and brightness_rank("shadowed") == 5
    mask = Image.new("L", (4, 2), 0)
    mask.putpixel((0, 0), 255)
    inverted = background_mask(mask)
    assert inverted.getpixel((0, 0)) == 0 and inverted.getpixel((3, 1)) == 255
