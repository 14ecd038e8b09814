"""What the CLI prints besides its results: streams that never fail to encode, and plain warnings."""

from __future__ import annotations

import io
import os
import sys
import warnings
from typing import TextIO

import click

from spl_sdk.errors import SplWarning
from spl_sdk.text import printable


def tolerant_streams() -> None:
    """Make stdout and stderr print unencodable characters as backslash escapes instead of raising.

    A result named 'résumé.png' on an ASCII terminal (or with PYTHONIOENCODING=ascii)
    is then reported as 'r\\xe9sum\\xe9.png' rather than ending the command with a
    UnicodeEncodeError after the file was written.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None:
            continue
        try:
            reconfigure(errors="backslashreplace")
        except (ValueError, io.UnsupportedOperation):  # a closed or exotic stream: leave it
            pass


def plain_warnings(env: dict[str, str] | None = None) -> None:
    """Print the SDK's own warnings as one 'Warning: ...' line; keep library chatter out of the way.

    transformers' and diffusers' logging drops to errors and other libraries' Python
    warnings are hidden, so a one-line error is not buried under them. Set
    SPL_SHOW_WARNINGS=1 (or pass python -W / PYTHONWARNINGS) to see everything.
    """
    env = os.environ if env is None else env
    if env.get("SPL_SHOW_WARNINGS", "").strip().lower() in ("1", "true", "yes", "on"):
        return
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    env.setdefault("DIFFUSERS_VERBOSITY", "error")
    env.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if not sys.warnoptions:  # the user's -W / PYTHONWARNINGS choices win
        warnings.filterwarnings("ignore")
        warnings.filterwarnings("always", category=SplWarning)
    original = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        if issubclass(category, SplWarning):
            click.echo(f"Warning: {printable(message)}", err=True)
        else:
            original(message, category, filename, lineno, file, line)

    warnings.showwarning = show
