"""The allocator setting the CLI, the app and the optimizer apply before full-resolution work."""

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


def test_the_optimizer_applies_it_for_library_callers():
    # without it a 4000x3000 post-processing spent most of its time page-faulting fresh buffers in
    code = ("import torch, spl_sdk.memory as m; from spl_sdk.optimizer import optimize_image; "
            "from spl_losses import SPLLoss; before = m._applied; "
            "optimize_image(torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8) * 0.5, [SPLLoss()], iterations=1); "
            "print(before, m._applied)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    if sys.platform.startswith("linux"):
        assert out.stdout.split() == ["False", "True"]
