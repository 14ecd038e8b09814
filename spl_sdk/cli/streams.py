"""Standard streams that never fail on a character the terminal's encoding lacks."""

from __future__ import annotations

import io
import sys


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
