"""How far ``--profile paper``'s arithmetic-order choices move an edit, on tiny random weights.

    python benchmarks/paper_order.py run OUT.npz [--profile paper|default] [--option NAME.FIELD=VALUE ...]
    python benchmarks/paper_order.py compare A.npz B.npz

``run`` edits one 128 x 128 crop of apps/examples/old_man.png in four configurations
(the paper's settings; CPL on; another seed and prompt pair; 8 steps with injection from
step 4) with the ``tiny-random-sd15`` backbone, float32, one CPU thread, and stores the four
8-bit results. ``compare`` prints, per configuration, the PSNR between two such runs and
their largest difference in 8-bit levels. Run it with two code versions (a checkout
before and after a change) or with ``--option`` overrides to see what one choice does.
This measures spl-sdk against itself; it is not a comparison with the paper's code.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parent.parent / "apps" / "examples" / "old_man.png"
CONFIGS = {  # name: (source prompt, target prompt, settings)
    "paper settings": ("a photo of an old man", "a colorful photo of an old man", {}),
    "with CPL": ("a photo of an old man", "a colorful photo of an old man", {"color_loss": "cpl"}),
    "seed 3, other prompts": ("a portrait of a man", "a portrait of a smiling man", {"seed": 3}),
    "8 steps, injection from 4": ("a photo of an old man", "a painting of an old man",
                                  {"steps": 8, "opt_start": 0.5}),
}


def run(out: Path, profile: str, options: list[str]) -> None:
    """Edit the crop in every configuration and store the results (uint8, one array per configuration)."""
    import torch
    from PIL import Image

    from spl_sdk.config import EditConfig
    from spl_sdk.editor import Editor

    torch.set_num_threads(1)
    photo = Image.open(EXAMPLE).convert("RGB")
    side = min(photo.size)
    photo = photo.crop((0, 0, side, side)).resize((128, 128), Image.LANCZOS)
    editor = Editor.from_config(EditConfig(backbone="tiny-random-sd15", working_size=128, dtype="float32",
                                           device="cpu", profile=profile, options=options))
    results = {}
    for name, (source, target, settings) in CONFIGS.items():
        result = editor.edit(photo, source, target, profile=profile, **settings)
        results[name] = np.asarray(result.image)
        print(f"{name}: {result.config.options}", file=sys.stderr)
    np.savez(out, **results)


def compare(a: Path, b: Path) -> None:
    """PSNR (dB, 8-bit peak) and the largest difference in 8-bit levels, per configuration."""
    first, second = np.load(a), np.load(b)
    for name in CONFIGS:
        x, y = first[name].astype(np.float64), second[name].astype(np.float64)
        mse = float(np.mean((x - y) ** 2))
        psnr = math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
        print(f"{name:28s} PSNR {psnr:6.1f} dB   max |diff| {int(np.abs(x - y).max())}/255")


def main() -> None:
    """Command line: run or compare."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("out", type=Path)
    r.add_argument("--profile", default="paper", choices=("paper", "default"))
    r.add_argument("--option", action="append", default=[])
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        run(args.out, args.profile, args.option)
    else:
        compare(args.a, args.b)


if __name__ == "__main__":
    main()
