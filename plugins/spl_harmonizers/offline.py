"""Offline harmonizer: style words from measured color statistics, no key and no network.

Foreground = mask > 0.5, background = the rest. Each region gets the words of
the rules below, evaluated on :class:`~spl_harmonizers.stats.RegionStats`
(Y = BT.601 luminance, S = mean HSV saturation, V = mean HSV value,
W = mean(Cr - Cb) / V, hue = the saturation-weighted dominant hue family).
Weather, season and environment cannot be measured reliably, so this
harmonizer never picks them; the object is the user's word or "object".

| category    | word      | rule (first match wins)                                     |
|-------------|-----------|-------------------------------------------------------------|
| brightness  | dazzling  | Y >= 0.75                                                   |
|             | bright    | 0.50 <= Y < 0.75                                            |
|             | dim       | 0.38 <= Y < 0.50                                            |
|             | dull      | 0.27 <= Y < 0.38                                            |
|             | shaded    | 0.16 <= Y < 0.27                                            |
|             | shadowed  | Y < 0.16                                                    |
| temperature | (none)    | S < 0.05 (gray has no temperature)                          |
|             | hot       | W >= 0.30                                                   |
|             | warm      | 0.08 <= W < 0.30                                            |
|             | cool      | -0.20 < W <= -0.08                                          |
|             | cold      | -0.35 < W <= -0.20                                          |
|             | icy       | W <= -0.35                                                  |
| tone        | greyscale | S < 0.05                                                    |
|             | white     | Y >= 0.75 and S < 0.15                                      |
|             | neon      | S >= 0.80 and V >= 0.70                                     |
|             | golden    | hue orange/yellow, W >= 0.15 and Y >= 0.40                  |
|             | earthy    | hue red/orange/yellow, S < 0.35 and Y < 0.50                |
|             | red, orange, yellow, green, blue | that hue family, when S >= 0.12 |
| time        | night     | Y < 0.16 and W <= -0.08 (very dark and blue)                |
|             | dark      | Y < 0.10                                                    |
|             | sunset    | hue red/orange, W >= 0.30 and 0.20 <= Y < 0.60              |

Brightness words are ordered by luminance, so a darker region never gets a
brighter word. When both regions fall into one band although their luminance
differs by at least 0.08, the darker region takes the next darker word (or, if
it is already the darkest, the brighter region the next brighter one), so a
visible difference always reaches the prompts.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from spl_harmonizers.stats import RegionStats, check_regions, foreground_mask, region_stats
from spl_sdk.components import Harmonizer
from spl_sdk.harmonize import VOCABULARY, Harmonization

# (lower bound of Y, word), brightest first; docs/method.md section 6 order
BRIGHTNESS_BANDS: tuple[tuple[float, str], ...] = (
    (0.75, "dazzling"), (0.50, "bright"), (0.38, "dim"), (0.27, "dull"), (0.16, "shaded"), (0.0, "shadowed"))
DISTINCT_LUMINANCE = 0.08
GRAY_SATURATION = 0.05


def brightness_word(y: float) -> str:
    """The brightness word of a mean luminance (table in the module docstring)."""
    return next(word for lower, word in BRIGHTNESS_BANDS if y >= lower)


def temperature_word(s: RegionStats) -> str | None:
    """hot/warm/cool/cold/icy from the chroma balance W, None when neutral or gray."""
    w = s.warmth
    if s.saturation < GRAY_SATURATION or -0.08 < w < 0.08:
        return None
    if w >= 0.30:
        return "hot"
    if w >= 0.08:
        return "warm"
    if w > -0.20:
        return "cool"
    return "cold" if w > -0.35 else "icy"


def tone_word(s: RegionStats) -> str | None:
    """The color-tone word (table in the module docstring), None when no rule is clear."""
    hue = s.dominant_hue
    if s.saturation < GRAY_SATURATION:
        return "greyscale"
    if s.luminance >= 0.75 and s.saturation < 0.15:
        return "white"
    if s.saturation >= 0.80 and s.value >= 0.70:
        return "neon"
    if hue in ("orange", "yellow") and s.warmth >= 0.15 and s.luminance >= 0.40:
        return "golden"
    if hue in ("red", "orange", "yellow") and s.saturation < 0.35 and s.luminance < 0.50:
        return "earthy"
    if hue in VOCABULARY["tone"] and s.saturation >= 0.12:
        return hue
    return None


def time_word(s: RegionStats) -> str | None:
    """A time word only when the statistics clearly show one (night, dark, sunset)."""
    if s.luminance < 0.16 and s.warmth <= -0.08:
        return "night"
    if s.luminance < 0.10:
        return "dark"
    if s.dominant_hue in ("red", "orange") and s.warmth >= 0.30 and 0.20 <= s.luminance < 0.60:
        return "sunset"
    return None


def separate_brightness(fg: RegionStats, bg: RegionStats) -> tuple[str, str]:
    """Brightness words of both regions, one band apart when their luminance clearly differs."""
    words = [w for _, w in BRIGHTNESS_BANDS]
    f, b = words.index(brightness_word(fg.luminance)), words.index(brightness_word(bg.luminance))
    if f == b and abs(fg.luminance - bg.luminance) >= DISTINCT_LUMINANCE:
        dark_is_fg = fg.luminance < bg.luminance
        if f < len(words) - 1:
            f, b = (f + 1, b) if dark_is_fg else (f, b + 1)
        else:
            f, b = (f, b - 1) if dark_is_fg else (f - 1, b)
    return words[f], words[b]


def region_words(s: RegionStats, brightness: str) -> list[str]:
    """All words of one region, brightness first."""
    return [brightness] + [w for w in (temperature_word(s), time_word(s), tone_word(s)) if w]


class OfflineHarmonizer(Harmonizer):
    """Picks style words from measured luminance, saturation and hue; no key, no network."""

    name = "offline"

    def __init__(self, options: Any = None, **fields: Any) -> None:
        # keyword options meant for other harmonizers (model, api_key, ...) are accepted and ignored
        super().__init__(options)

    def measure(self, composite: Image.Image, mask: Image.Image) -> tuple[RegionStats, RegionStats]:
        """Statistics of the foreground (mask > 0.5) and the background of the composite."""
        fg = foreground_mask(mask, composite.size)
        check_regions(fg)
        return region_stats(composite, fg), region_stats(composite, ~fg)

    def describe(self, composite: Image.Image, mask: Image.Image,
                 object_word: str | None = None) -> Harmonization:
        """Words from the module docstring's rules for both regions; deterministic."""
        fg, bg = self.measure(composite, mask)
        fg_bright, bg_bright = separate_brightness(fg, bg)
        return Harmonization(
            foreground_object=(object_word or "").strip() or "object",
            foreground_words=region_words(fg, fg_bright),
            background_words=region_words(bg, bg_bright))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
