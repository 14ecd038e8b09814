"""The default solver against an earlier revision's, at 512 px: final SPL, evaluations and seconds.

    python benchmarks/refine_history.py                      # against the first release (9a5e15b)

The earlier solver is ``spl_sdk/optimizer.py`` as of ``--rev``, read from git
history (a clone with history is needed), given today's loss terms. Inputs:
the bundled example pair (``old_man.png`` and ``old_man_edited.png``, what ``tox
-e demo`` refines); scikit-image's astronaut, coffee, chelsea and rocket (the
photos the solver's settings were chosen on), each cropped square at 512 px
(*detailed*) and shrunk to 64 px then upscaled bicubic (*smooth*); and the inputs
of ``benchmarks/refine.py`` at 512 (the bundled photos, never used for tuning).
Edits other than the bundled pair are ``refine.py``'s synthetic one. All in this
process, one after the other; ``--threads`` sets torch's threads (default 1).

It compares final SPL only, which is not how the default solver is judged since
it holds the edit's local intensity (it ends higher on purpose); the result
against a known ideal is ``benchmarks/refine_quality.py``'s job.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRST_RELEASE = "9a5e15b"


def earlier_solver(rev: str) -> types.ModuleType:
    """The solver module at ``rev`` (``spl_sdk/optimiser.py`` before 0.2.0's rename), loaded on its own."""
    code, path = None, ""
    for path in ("spl_sdk/optimizer.py", "spl_sdk/optimiser.py"):
        try:
            code = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True,
                                  capture_output=True, text=True).stdout
            break
        except (OSError, subprocess.CalledProcessError) as exc:
            failure = exc
    if code is None:
        sys.exit(f"cannot read the solver at {rev} from git history ({failure}); "
                 f"run this in a clone with full history.")
    module = types.ModuleType(f"optimizer_{rev}")
    sys.modules[module.__name__] = module  # (its dataclasses look their module up there)
    exec(compile(code, f"{rev}:{path}", "exec"), module.__dict__)
    return module


class ThreeTuple:
    """A loss term as earlier solvers called it: value_grad_and_curvature gave (value, grad, curvature)."""

    def __init__(self, term) -> None:
        self.term = term

    def value_grad_and_curvature(self, source, edited):
        return tuple(self.term.value_grad_and_curvature(source, edited))[:3]

    def __call__(self, source, edited):
        return self.term(source, edited)


def inputs() -> dict:
    """name -> (source, edited), all 512 x 512 in [-1, 1]."""
    from PIL import Image
    from skimage import data

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import refine as rb

    def square(img: Image.Image, side: int) -> Image.Image:
        w, h = img.size
        m = min(w, h)
        box = ((w - m) // 2, (h - m) // 2, (w - m) // 2 + m, (h - m) // 2 + m)
        return img.crop(box).resize((side, side), Image.Resampling.LANCZOS)

    def load(name: str):
        with Image.open(ROOT / "apps" / "examples" / name) as img:
            return rb._to_tensor(img.convert("RGB"))

    cases = {"bundled pair (demo)": (load("old_man.png"), load("old_man_edited.png"))}
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        img = Image.fromarray(getattr(data, name)()).convert("RGB")
        for kind, src in (("detailed", rb._to_tensor(square(img, 512))),
                          ("smooth", rb._to_tensor(square(img, 64).resize((512, 512), Image.Resampling.BICUBIC)))):
            cases[f"{name} ({kind}, tuning)"] = (src, rb.synthetic_edit(src))
    mosaic = rb.detailed_source(512, 512)
    cases["mosaic (detailed)"] = (mosaic, rb.synthetic_edit(mosaic))
    for name in rb.PHOTOS:
        src = rb.smooth_source(name, 512, 512)
        cases[f"{name} (smooth)"] = (src, rb.synthetic_edit(src))
    return cases


def main() -> None:
    """Run both solvers on every input and print one Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default=FIRST_RELEASE, help="git revision of the earlier solver (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from spl_losses import SPLLoss
    from spl_sdk import optimizer

    torch.set_num_threads(args.threads)
    old = earlier_solver(args.rev)
    print(f"| input | {args.rev}: SPL (evaluations, s) | today: SPL (evaluations, s) |")
    print("|---|---|---|")
    for name, (source, edited) in inputs().items():
        began = time.perf_counter()
        solve = getattr(old, "optimize_image", None) or old.optimise_image  # the name before 0.2.0
        before = solve(source, edited, [ThreeTuple(SPLLoss())], iterations=100)
        cells = [f"{before.loss_after:.5f} ({before.iterations}, {time.perf_counter() - began:.2f})"]
        began = time.perf_counter()
        now = optimizer.optimize_image(source, edited, [SPLLoss()], iterations=100)
        mark = " (higher)" if now.loss_after > before.loss_after else ""
        cells.append(f"{now.loss_after:.5f}{mark} ({now.iterations}, {time.perf_counter() - began:.2f})")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    print(f"\ntorch threads: {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
