"""Shared fixtures: a fresh plug-in manager, the tiny CPU backbone and a 256 px example photo."""

from __future__ import annotations

import os
from pathlib import Path

# No test may reach the Hub, even on a machine with network: its address is a refusing loopback
# port (tests of the "Hub cannot be reached" path need it unreachable, not only offline mode).
# Set before anything imports huggingface_hub, which reads it once.
NO_HUB = "http://127.0.0.1:9"
os.environ["HF_ENDPOINT"] = NO_HUB

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from spl_sdk.plugins import Plugins  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "apps" / "examples"

# Test processes share few cores; one intra-op thread each avoids oversubscription (a tiny
# UNet call measured 6x slower with 2 threads than with 1 at load 9 on 2 cores).
# SPL_TEST_THREADS overrides; OMP_NUM_THREADS carries the choice into subprocesses.
THREADS = int(os.environ.get("SPL_TEST_THREADS", "1"))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
torch.set_num_threads(THREADS)


@pytest.fixture
def plugins() -> Plugins:
    """A fresh manager with the installed (built-in) plug-ins loaded from their entry points."""
    return Plugins(load_entrypoints=True, env={})


@pytest.fixture(scope="session")
def tiny_backbone():
    """The seeded ``tiny-random-sd15`` backbone on the CPU, built once per test session."""
    return Plugins(load_entrypoints=True, env={}).backbone("tiny-random-sd15").load(device="cpu")


@pytest.fixture(scope="module")
def sd3():
    """The seeded ``tiny-random-sd3`` backbone on the CPU (SD3's layout), once per test module."""
    from spl_backbones.tiny_flow import TinyRandomSD3

    return TinyRandomSD3.load(device="cpu")


@pytest.fixture(scope="module")
def flux():
    """The seeded ``tiny-random-flux`` backbone on the CPU (FLUX's layout), once per test module."""
    from spl_backbones.tiny_flow import TinyRandomFlux

    return TinyRandomFlux.load(device="cpu")


@pytest.fixture
def example_image():
    """``apps/examples/old_man.png`` as an RGB PIL image resized to 256x256."""
    from PIL import Image

    with Image.open(EXAMPLES / "old_man.png") as img:
        return img.convert("RGB").resize((256, 256), Image.Resampling.LANCZOS)


@pytest.fixture
def photo_file(tmp_path: Path) -> Path:
    """tmp_path/photo.png: 24 x 24 seeded noise, structure to align on (refine rows align by default)."""
    path = tmp_path / "photo.png"
    pixels = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path
