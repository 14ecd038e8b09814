"""Alignment benchmark: seconds and peak memory of ``spl_sdk.align`` next to the refine's own, per size;
and the quality check of docs/align.md (a moved edit refined within 0.5 dB of the unmoved one).

    python benchmarks/align.py                           # cost at 1024, 2048, 4096 on the CPU, 1 thread
    python benchmarks/align.py --sizes 2048 --device cuda --threads 16     # the same on a GPU
    python benchmarks/align.py --quality --sizes 2048    # PSNR of every drift case at 2048 px

Input: ``woman.png`` (apps/examples) at WxW*2/3, its ideal edit (tests/moved_edits.py:
object-dependent recolor), blurred (4 px per 1024), moved by the "all" drift (shift,
zoom 1.02, rotation -0.7 degrees, 1.5 px bend at 512 px, scaled with the size).
Each measurement runs in its own process: ``peak`` is that process's peak RSS
(``ru_maxrss``; torch and OpenCV themselves take about 0.4 GiB of it) on the CPU,
``torch.cuda.max_memory_allocated`` on a GPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def _inputs(width: int):
    from moved_edits import DRIFTS, blurred, moved, photo, recolor

    src = photo("woman.png", (width, width * 2 // 3))
    ideal = recolor(src)
    edit = blurred(ideal, 4.0 * width / 1024)
    return src, ideal, edit, moved(edit, DRIFTS["all"])


def one(what: str, width: int, device: str, threads: int) -> dict:
    """One measurement in this process: 'align' (auto on the moved edit) or 'refine' (align off)."""
    import torch

    from spl_sdk import imageio
    from spl_sdk.align import align
    from spl_sdk.refiner import refine

    torch.set_num_threads(threads)
    import cv2

    cv2.setNumThreads(threads)
    src, _, _, moved_edit = _inputs(width)
    dev = torch.device(device)
    s, m = imageio.pil_to_tensor(src).to(dev), imageio.pil_to_tensor(moved_edit).to(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # torch, OpenCV, the inputs
    began = time.perf_counter()
    if what == "align":
        info = align(s, m).info
    else:
        info = refine(src, moved_edit, align="off", device=device).timings
    if dev.type == "cuda":
        torch.cuda.synchronize()
        peak = before = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"what": what, "size": f"{width}x{width * 2 // 3}", "seconds": round(time.perf_counter() - began, 2),
            "peak_mib": round(peak), "before_mib": round(before), "info": info}


def quality(width: int) -> None:
    """PSNR (interior) of refining each moved edit with --align auto against refining the unmoved edit."""
    from moved_edits import DRIFTS, moved, psnr_interior

    from spl_sdk.refiner import refine

    src, ideal, edit, _ = _inputs(width)
    base = psnr_interior(refine(src, edit, align="off").image, ideal)
    print(f"| {width} | unmoved edit | {base:.2f} | | | |")
    for case, drift in DRIFTS.items():
        result = refine(src, moved(edit, drift), align="auto")
        got = psnr_interior(result.image, ideal)
        plain = psnr_interior(refine(src, moved(edit, drift), align="off").image, ideal)
        print(f"| {width} | {case} | {got:.2f} | {got - base:+.2f} | {result.alignment['mode']} | "
              f"{plain - base:+.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1024, 2048, 4096])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quality", action="store_true", help="PSNR of every drift case instead of cost")
    parser.add_argument("--one", nargs=2, metavar=("WHAT", "WIDTH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.device, args.threads)))
        return
    if args.quality:
        print("| size | case | PSNR dB | vs unmoved | applied | without alignment, vs unmoved |\n"
              "|---|---|---|---|---|---|")
        for width in args.sizes:
            quality(width)
        return
    print("| size | align s | align peak MiB (before) | refine s | refine peak MiB (before) | estimated |\n"
          "|---|---|---|---|---|---|")
    for width in args.sizes:
        rows = {}
        for what in ("align", "refine"):
            out = subprocess.run([sys.executable, __file__, "--one", what, str(width), "--device", args.device,
                                  "--threads", str(args.threads)], capture_output=True, text=True, check=True)
            rows[what] = json.loads(out.stdout.strip().splitlines()[-1])
        a, r = rows["align"], rows["refine"]
        info = a["info"]
        print(f"| {a['size']} | {a['seconds']} | {a['peak_mib']} ({a['before_mib']}) | {r['seconds']} | "
              f"{r['peak_mib']} ({r['before_mib']}) | "
              f"{info['mode']}, zoom {info['zoom']:.4f}, rot {info['rotation']:+.2f} |", flush=True)


if __name__ == "__main__":
    main()
