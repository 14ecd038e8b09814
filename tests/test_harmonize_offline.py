"""The offline harmonizer on the shared example photos with synthetic masks and composites."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageOps
from vocabulary import brightness_rank, words_by_category

from spl_harmonizers.offline import (
    BRIGHTNESS_BANDS,
    OfflineHarmonizer,
    brightness_word,
    separate_brightness,
)
from spl_harmonizers.stats import foreground_mask, region_stats
from spl_sdk import Plugins
from spl_sdk.errors import HarmonizerError

EXAMPLES = Path(__file__).resolve().parents[1] / "apps" / "examples"
SIZE = (192, 192)


def photo(name: str) -> Image.Image:
    return Image.open(EXAMPLES / name).convert("RGB").resize(SIZE, Image.Resampling.BILINEAR)


def ellipse_mask() -> Image.Image:
    mask = Image.new("L", SIZE, 0)
    ImageDraw.Draw(mask).ellipse((48, 40, 144, 160), fill=255)
    return mask


def composite(fg: Image.Image, bg: Image.Image, mask: Image.Image) -> Image.Image:
    """Paste ``fg`` onto ``bg`` where the mask is white."""
    return Image.composite(fg, bg, mask)


def brightness_of(words: list[str]) -> int:
    return brightness_rank(words_by_category(words)["brightness"])


def test_registered_through_the_entry_point():
    assert Plugins().harmonizer("offline") is OfflineHarmonizer


def test_dark_object_on_bright_background_gets_a_darker_word():
    mask = ellipse_mask()
    dark_cat = ImageEnhance.Brightness(photo("cats.png")).enhance(0.35)
    bright_bg = ImageEnhance.Brightness(photo("woman.png")).enhance(1.7)
    h = OfflineHarmonizer().describe(composite(dark_cat, bright_bg, mask), mask, "cat")
    assert h.foreground_object == "cat"
    assert brightness_of(h.foreground_words) > brightness_of(h.background_words)  # larger = darker
    assert h.source_prompt.endswith(" cat") and h.source_prompt != h.target_prompt


def test_bright_object_on_dark_background_gets_a_brighter_word():
    mask = ellipse_mask()
    bright_obj = ImageEnhance.Brightness(photo("marshmallow.jpg")).enhance(2.2)
    dark_bg = ImageEnhance.Brightness(photo("cats.png")).enhance(0.3)
    h = OfflineHarmonizer().describe(composite(bright_obj, dark_bg, mask), mask)
    assert h.foreground_object == "object"
    assert brightness_of(h.foreground_words) < brightness_of(h.background_words)


@pytest.mark.parametrize("factor", [0.2, 0.5, 0.8, 1.0, 1.4, 2.0])
def test_brightness_words_follow_luminance_order(factor):
    """Darkening the foreground never gives it a brighter word than a brighter copy gets."""
    mask = ellipse_mask()
    bg = photo("old_man.png")
    obj = photo("cats.png")
    harmonizer = OfflineHarmonizer()
    darker = harmonizer.describe(composite(ImageEnhance.Brightness(obj).enhance(factor), bg, mask), mask)
    brighter = harmonizer.describe(
        composite(ImageEnhance.Brightness(obj).enhance(factor * 1.25), bg, mask), mask)
    assert brightness_of(darker.foreground_words) >= brightness_of(brighter.foreground_words)


def test_greyscale_foreground_gets_greyscale_and_colorful_background_does_not():
    mask = ellipse_mask()
    gray_cat = ImageOps.grayscale(photo("cats.png")).convert("RGB")
    h = OfflineHarmonizer().describe(composite(gray_cat, photo("woman.png"), mask), mask, "cat")
    assert "greyscale" in h.foreground_words
    assert "greyscale" not in h.background_words
    fg = words_by_category(h.foreground_words)
    assert "temperature" not in fg  # gray has no temperature


def test_warm_and_blue_night_regions():
    mask = ellipse_mask()
    warm = Image.new("RGB", SIZE, (235, 150, 60))  # orange light
    night = Image.new("RGB", SIZE, (10, 20, 55))  # very dark blue
    h = OfflineHarmonizer().describe(composite(warm, night, mask), mask, "lamp")
    fg, bg = words_by_category(h.foreground_words), words_by_category(h.background_words)
    assert fg["temperature"] in ("warm", "hot") and fg.get("tone") in ("golden", "orange")
    assert bg["temperature"] in ("cool", "cold", "icy") and bg["time"] == "night"
    assert bg["brightness"] == "shadowed"


def test_deterministic_and_mask_resized():
    mask = ellipse_mask()
    image = composite(ImageEnhance.Brightness(photo("cats.png")).enhance(0.4), photo("woman.png"), mask)
    harmonizer = OfflineHarmonizer()
    first = harmonizer.describe(image, mask, "cat")
    assert harmonizer.describe(image, mask, "cat") == first
    assert harmonizer.describe(image, mask.resize((96, 96)), "cat") == first


def test_same_band_but_clearly_different_luminance_gets_different_words():
    band = next(y for y, w in BRIGHTNESS_BANDS if w == "dim")  # lower bound of "dim"
    fg = _stats_with_luminance(band + 0.005)
    bg = _stats_with_luminance(band + 0.095)
    assert brightness_word(fg.luminance) == brightness_word(bg.luminance) == "dim"
    f, b = separate_brightness(fg, bg)
    assert brightness_rank(f) == brightness_rank(b) + 1
    close = separate_brightness(_stats_with_luminance(band + 0.01), _stats_with_luminance(band + 0.03))
    assert close == ("dim", "dim")


def _stats_with_luminance(y: float):
    value = int(round(y * 255))
    img = Image.new("RGB", (8, 8), (value, value, value))
    return region_stats(img, np.ones((8, 8), bool))


def test_stats_of_known_colors():
    region = foreground_mask(Image.new("L", (8, 8), 255), (8, 8))
    red = region_stats(Image.new("RGB", (8, 8), (255, 0, 0)), region)
    assert red.luminance == pytest.approx(0.299) and red.saturation == pytest.approx(1.0)
    assert red.dominant_hue == "red" and red.warmth > 0.5
    blue = region_stats(Image.new("RGB", (8, 8), (0, 0, 255)), region)
    assert blue.dominant_hue == "blue" and blue.warmth < -0.5
    gray = region_stats(Image.new("RGB", (8, 8), (128, 128, 128)), region)
    assert gray.saturation == 0 and gray.dominant_hue is None and gray.warmth == pytest.approx(0)


def test_empty_mask_is_a_clear_error():
    with pytest.raises(HarmonizerError, match="no foreground .white. pixels"):
        OfflineHarmonizer().describe(photo("cats.png"), Image.new("L", SIZE, 0))
    with pytest.raises(HarmonizerError, match="no background .black. pixels"):
        OfflineHarmonizer().describe(photo("cats.png"), Image.new("L", SIZE, 255))


def test_ignores_options_of_other_harmonizers_and_keeps_no_key():
    h = OfflineHarmonizer(api_key="sk-should-not-be-kept", model="x")
    assert "sk-should" not in repr(h) and "api_key" not in h.options
