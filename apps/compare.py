"""Offline before/after comparison: the picture is composed in Python with PIL, no browser component."""

from __future__ import annotations

from typing import Any

import streamlit as st
from PIL import Image, ImageChops, ImageDraw

MODES = ("Wipe", "Blend", "Side by side")


def _same_size(before: Image.Image, after: Image.Image) -> tuple[Image.Image, Image.Image]:
    before, after = before.convert("RGB"), after.convert("RGB")
    if after.size != before.size:
        after = after.resize(before.size, Image.Resampling.LANCZOS)
    return before, after


def wipe(before: Image.Image, after: Image.Image, position: float) -> Image.Image:
    """Before on the left of ``position`` (0..1 of the width), after on the right, with a divider."""
    before, after = _same_size(before, after)
    w, h = before.size
    x = round(min(max(position, 0.0), 1.0) * w)
    out = after.copy()
    out.paste(before.crop((0, 0, x, h)), (0, 0))
    if 0 < x < w:
        line = max(1, w // 256)
        ImageDraw.Draw(out).rectangle((x - line, 0, x + line - 1, h), fill=(255, 255, 255))
    return out


def blend(before: Image.Image, after: Image.Image, amount: float) -> Image.Image:
    """A cross-fade: 0 is the before image, 1 the after image."""
    before, after = _same_size(before, after)
    return Image.blend(before, after, min(max(amount, 0.0), 1.0))


def side_by_side(before: Image.Image, after: Image.Image, gap: int = 8) -> Image.Image:
    """Both images next to each other on a white strip."""
    before, after = _same_size(before, after)
    w, h = before.size
    out = Image.new("RGB", (2 * w + gap, h), (255, 255, 255))
    out.paste(before, (0, 0))
    out.paste(after, (w + gap, 0))
    return out


def difference(before: Image.Image, after: Image.Image) -> Image.Image:
    """Absolute per-pixel difference, brightened so small changes show."""
    before, after = _same_size(before, after)
    diff = ImageChops.difference(before, after)
    peak = max(hi for _, hi in diff.getextrema()) or 1
    return diff.point(lambda v: min(255, v * 255 // peak))


def show(before: Image.Image, after: Image.Image, key: str = "compare", container: Any = st) -> None:
    """Comparison widget: a mode choice and a position slider, recomputed on each change."""
    mode = container.radio("Compare", MODES, horizontal=True, key=f"{key}.mode")
    if mode == "Side by side":
        container.image(side_by_side(before, after), caption="Before | After", width="content")
        return
    amount = container.slider("Before ← → After", 0, 100, 50, key=f"{key}.amount",
                              help="Wipe: where the divider stands. Blend: how much of the result shows.")
    picture = wipe(before, after, amount / 100) if mode == "Wipe" else blend(before, after, amount / 100)
    caption = "Before (left) | After (right)" if mode == "Wipe" else f"{amount}% after"
    container.image(picture, caption=caption, width="content")
