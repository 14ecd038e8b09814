"""Time an edit per phase, with and without SPL, and its peak memory.

    python benchmarks/edit.py                       # tiny-random-sd15, 256 px, 15 steps
    python benchmarks/edit.py --sd15 --steps 2 --no-warmup   # random SD-1.5-sized backbone at 512 px
    python benchmarks/edit.py --sd15 --device cuda --dtype float16 --steps 15   # on a GPU
    python benchmarks/edit.py --sdxl --steps 2 --opt-start 0.5 --iters 20 --no-warmup --only on   # random SDXL, 1024 px (~18 GiB RAM)
    python benchmarks/edit.py --sdxl --device cuda --dtype float16 --steps 15   # SDXL on a GPU
    python benchmarks/edit.py --backbone tiny-random-sdxl --size 128 --steps 2   # the SDXL path, in seconds
    python benchmarks/edit.py --source-size 4000x3000 --only on   # post-processing of a 4000x3000 photo

Each case runs in its own process so that its peak RSS (ru_maxrss) and, on CUDA,
torch's peak allocation belong to that case alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "apps" / "examples" / "old_man.png"
PROMPTS = ("a grayscale photo of an old man", "a colorful photo of an old man")


def run_case(args: argparse.Namespace) -> dict:
    """One edit in this process; returns timings and memory."""
    import torch

    from spl_sdk.config import EditConfig
    from spl_sdk.editor import Editor

    torch.set_num_threads(args.threads) if args.threads else None
    cfg = EditConfig(backbone=args.backbone, device=args.device, dtype=args.dtype,
                     working_size=args.size, steps=args.steps, iterations=args.iters,
                     structure_loss="spl" if args.spl else None, post_process=args.spl,
                     **({} if args.opt_start is None else {"opt_start": args.opt_start}))
    image = EXAMPLE
    if args.source_size:  # the example upscaled: post-processing then runs at this size
        from PIL import Image

        w, _, h = args.source_size.partition("x")
        with Image.open(EXAMPLE) as img:
            image = img.convert("RGB").resize((int(w), int(h or w)), Image.Resampling.BICUBIC)
    began = time.perf_counter()
    editor = Editor.from_config(cfg)
    load_s = time.perf_counter() - began
    if not args.no_warmup:
        editor.edit(EXAMPLE, *PROMPTS)  # warm-up (at the example's size): first calls pay for lazy initialization
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    result = editor.edit(image, *PROMPTS)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    wall = time.perf_counter() - began
    row = {"backbone": args.backbone, "size": args.size, "steps": args.steps, "spl": args.spl,
           "load_s": round(load_s, 2), "edit_s": round(wall, 3),
           "phases": {k: round(v, 3) for k, v in result.timings.items()},
           "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}
    if args.device.startswith("cuda"):
        row["peak_cuda_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        row["device_name"] = torch.cuda.get_device_name()
    return row


def main() -> None:
    """Run the with/without-SPL pair, each in a child process, and print a table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sd15", action="store_true", help="use the random SD-1.5-sized backbone at 512 px")
    parser.add_argument("--sdxl", action="store_true",
                        help="use the random SDXL-sized backbone (random-sdxl) at 1024 px; ~20 GiB RAM on a CPU")
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--source-size", default=None,
                        help="resize the example photo to WxH first (post-processing runs at this size)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed first edit")
    parser.add_argument("--opt-start", type=float, default=None,
                        help="fraction of steps after which SPL is injected (default 0.8: with fewer than "
                             "5 steps no step injects; 0.5 with 2 steps injects at the second)")
    parser.add_argument("--only", choices=("off", "on"), default=None, help="run only SPL off or on")
    parser.add_argument("--case", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--spl", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    default = "random-sdxl" if args.sdxl else "random-sd15" if args.sd15 else "tiny-random-sd15"
    args.backbone = args.backbone or default
    args.size = args.size or (1024 if args.sdxl else 512 if args.sd15 else 256)
    if args.case:
        print(json.dumps(run_case(args)))
        return
    rows = []
    for spl in (False, True):
        if args.only and args.only != ("on" if spl else "off"):
            continue
        cmd = [sys.executable, __file__, "--case", "--backbone", args.backbone, "--size", str(args.size),
               "--steps", str(args.steps), "--iters", str(args.iters), "--device", args.device,
               "--dtype", args.dtype, "--threads", str(args.threads)] + (["--spl"] if spl else []) \
            + (["--no-warmup"] if args.no_warmup else []) \
            + (["--source-size", args.source_size] if args.source_size else []) \
            + (["--opt-start", str(args.opt_start)] if args.opt_start is not None else [])
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"case failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{'backbone':<16} {'size':>5} {'steps':>5} {'SPL':>4} {'edit s':>8} {'unet s':>7} "
          f"{'vae s':>6} {'optim s':>7} {'post s':>7} {'peak RSS GiB':>12}")
    for r in rows:
        p = r["phases"]
        print(f"{r['backbone']:<16} {r['size']:>5} {r['steps']:>5} {'on' if r['spl'] else 'off':>4} "
              f"{r['edit_s']:>8.2f} {p.get('unet', 0):>7.2f} {p.get('vae', 0):>6.2f} "
              f"{p.get('optimization', 0):>7.2f} {p.get('post_process', 0):>7.2f} {r['peak_rss_gib']:>12.2f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
