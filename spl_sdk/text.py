"""Text that is safe to print: what a file name or a model's answer holds must not drive the terminal."""

from __future__ import annotations

import re
import sys
import unicodedata

# bidirectional overrides and isolates reorder what the terminal shows (Trojan-Source style)
_BIDI = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def neutralize(text: object) -> str:
    """``str(text)`` with control characters (ESC, CR, newlines, C1, bidi overrides) shown as escapes."""
    return "".join(_escape(ch) if ch in _BIDI or unicodedata.category(ch) == "Cc" else ch
                   for ch in str(text))


def printable(text: object, encoding: str | None = None) -> str:
    """:func:`neutralize`, then characters the terminal's encoding lacks as backslash escapes.

    ``encoding`` defaults to stdout's; a name such as 'résumé.png' prints as
    'r\\xe9sum\\xe9.png' on an ASCII terminal, and a file name holding bytes that
    are not UTF-8 (Python's surrogate escapes) as '\\udcff'.
    """
    enc = encoding or getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        return neutralize(text).encode(enc, "backslashreplace").decode(enc)
    except LookupError:  # an encoding Python does not know: ASCII is always printable
        return neutralize(text).encode("ascii", "backslashreplace").decode("ascii")


# API keys and tokens: well-known prefixes, or a long unbroken run of random-looking key characters
_KEY_PREFIX = re.compile(r"^(sk-|pk-|rk-|hf_|ghp_|gho_|ghs_|github_pat_|glpat-|xox[abpr]-|AKIA|AIza)"
                         r"[-_A-Za-z0-9]{12,}$")
_KEY_RUN = re.compile(r"^[-_A-Za-z0-9+=]{32,}$")  # no '/' or '.': paths and model ids never match
_QUOTED = re.compile(r"'([^'\s]*)'")


SECRET_HINTS = ("key", "token", "secret", "password")  # option names whose values are never shown


def secret_name(name: str) -> bool:
    """True for option names that look like they hold a secret (api_key, token, ...)."""
    return any(h in name.lower() for h in SECRET_HINTS)


def looks_secret(value: object) -> bool:
    """True for text shaped like an API key or token, which an error line must not echo."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    if _KEY_PREFIX.match(text):
        return True
    return bool(_KEY_RUN.match(text)) and any(c.isdigit() for c in text) \
        and any(c.islower() for c in text) and any(c.isupper() for c in text)


def shown(value: object) -> str:
    """``repr(value)`` for an error line, or '***' when the value looks like a secret."""
    return "***" if looks_secret(value) else repr(value)


def redact(text: str) -> str:
    """``text`` with every quoted value that looks like a secret replaced by '***'."""
    return _QUOTED.sub(lambda m: "'***'" if looks_secret(m.group(1)) else m.group(0), text)


def a(noun: str) -> str:
    """``noun`` with its indefinite article: 'an attention controller', 'a loss term'."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"
