"""What ``spl edit`` checks and says before the model loads: words, options, mask, and what it loads.

Everything here needs only the prompts, the options, the files and the plug-in
classes (no weights), so a misspelt word costs no model load.
"""

from __future__ import annotations

import contextlib
import difflib
import string
import sys
from collections.abc import Iterator
from typing import IO, Any

from spl_sdk.config import EditConfig
from spl_sdk.errors import PromptError, SplError
from spl_sdk.plugins import KIND_LABEL, Plugins
from spl_sdk.text import a

MASK_EMPTY, MASK_FULL = 0.005, 0.995  # share of the image a mask must cover to restrict anything


def method_of(plugins: Plugins, cfg: EditConfig) -> str | None:
    """The edit method the run uses: the given one, else the backbone's default (None if unknown)."""
    try:
        return cfg.method or plugins.backbone(cfg.backbone).default_method
    except SplError:
        return None


def used(plugins: Plugins, cfg: EditConfig) -> list[tuple[str, str]]:
    """(kind, name) of every component the run uses, the backbone's default method included."""
    from spl_sdk.options import used_components

    method = method_of(plugins, cfg)
    attention = True
    if method is not None and method in plugins.names("method"):
        attention = bool(plugins.get("method", method).uses_attention)
    found = used_components(plugins, cfg, uses_attention=attention)
    if method is not None and ("method", method) not in found:
        found.insert(1, ("method", method))
    return found


def unused_option_warnings(plugins: Plugins, cfg: EditConfig) -> list[str]:
    """One sentence per --option (or options key) naming a component this run does not use."""
    from spl_sdk.options import resolve_key

    in_use = set(used(plugins, cfg))
    out = []
    for key, fields in (cfg.options or {}).items():
        try:
            kind, name = resolve_key(plugins, key)
        except SplError:
            continue  # an unknown name is an error of its own, raised by the run
        if (kind, name) not in in_use:
            label = KIND_LABEL.get(kind, kind)
            shown = ", ".join(f"{key}.{f}" for f in fields) or key
            out.append(f"the options {shown} are ignored: this run uses no {label} '{name}' "
                       f"(choose {a(label)} with {_flag(kind, name)}).")
    return out


def _flag(kind: str, name: str) -> str:
    """The flag that chooses a component of ``kind``, e.g. '--method flowedit'."""
    if kind == "loss":
        return f"--structure-loss {name} or --color-loss {name}"
    if kind == "mask-extractor":
        return f"--mask-extractor {name} and a masked --structure-area, --color-area or --edit-area"
    flag = {"post-processor": "post-processors"}.get(kind, kind)
    return f"--{flag} {name}"


def check_words(plugins: Plugins, cfg: EditConfig, source_prompt: str, target_prompt: str) -> None:
    """Refuse a word option (mask, blend or re-weight words) naming a word its prompt lacks."""
    from spl_sdk.options import resolve_key

    in_use = set(used(plugins, cfg))
    for key, fields in (cfg.options or {}).items():
        try:
            if resolve_key(plugins, key) not in in_use:
                continue
        except SplError:
            continue
        for field, value in fields.items():
            side = "source" if field.endswith("_source") else "target" if field.endswith("_target") \
                else "target" if field == "reweight" else None
            if side is None or "words" not in field and field != "reweight":
                continue
            words = list(value) if isinstance(value, (list, dict)) else []
            prompt = source_prompt if side == "source" else target_prompt
            for word in words:
                if isinstance(word, str):
                    _check_word(word, prompt, side, f"{key}.{field}")


def _check_word(word: str, prompt: str, side: str, where: str) -> None:
    from spl_sdk.prompts import prompt_words

    cleaned = word.strip().strip(string.punctuation + string.whitespace).lower()
    if not cleaned or cleaned in prompt.lower():
        return  # the tokenizer's exact check follows after the load
    words = prompt_words(prompt)
    close = difflib.get_close_matches(cleaned, words, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise PromptError(f"word {cleaned!r} ({where}) is not in the {side} prompt {prompt!r}{hint}; "
                      f"use one of its words: {', '.join(words) or '(none)'}.")


def mask_warning(mask: Any) -> str | None:
    """A sentence when a user mask (PIL "L", white = inside) covers (almost) nothing or everything."""
    import numpy as np

    share = float((np.asarray(mask) >= 128).mean())
    if share < MASK_EMPTY:
        return (f"the mask covers {share:.1%} of the image: (almost) nothing, so the masked losses apply "
                f"almost nowhere; check that white marks the area (--mask).")
    if share > MASK_FULL:
        return (f"the mask covers {share:.1%} of the image: (almost) everything, the same as no mask; "
                f"check that white marks only the area (--mask).")
    return None


def loading_line(plugins: Plugins, cfg: EditConfig) -> str:
    """'loading tiny-random-sd15 (model: X) on auto …': said before the slow part."""
    try:
        model = cfg.model or plugins.backbone(cfg.backbone).default_model
    except SplError:
        model = cfg.model
    where = f" (model: {model})" if model else ""
    return f"loading {cfg.backbone}{where} on {cfg.device} …"


@contextlib.contextmanager
def loading_status(text: str, stream: IO[str] | None = None) -> Iterator[None]:
    """Show ``text`` on a terminal while the block runs, then clear it (the phases follow).

    Only on a terminal: in a log or a pipe the line would stand before an error line
    that must be the only one, and the phase lines say what ran.
    """
    stream = stream or sys.stderr
    shown = stream.isatty()
    if shown:
        stream.write(text)
        stream.flush()
    try:
        yield
    finally:
        if shown:
            stream.write("\r\033[K")  # back to the line's start, erase it
            stream.flush()
