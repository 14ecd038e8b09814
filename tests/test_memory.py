"""The allocator setting the CLI and the app apply before full-resolution work."""

from __future__ import annotations

import subprocess
import sys


def test_keep_freed_memory_applies_once_on_linux_glibc():
    code = ("from spl_sdk.memory import keep_freed_memory as k; "
            "print(k(), k())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    applied = out.stdout.split()
    assert applied[0] == applied[1]  # idempotent
    if sys.platform.startswith("linux"):
        assert applied == ["True", "True"]
