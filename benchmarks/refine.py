"""Time the default refine solver against a plain autograd implementation of DESIGN.md section 3.

    python benchmarks/refine.py                          # 512 and 2048 px, 100 iterations
    python benchmarks/refine.py --sizes 512 --plain-box conv pool
    python benchmarks/refine.py --only-fast --sizes 4096 # peak memory of a 4096 x 4096 refine

Inputs: ``apps/examples/cats.png`` resized to N x N (bicubic) and a synthetic edit
of it (contrast 0.6, colour gains 1.15/0.95/0.8, a box blur of radius 2 N / 512),
so the structure loss starts far from 0. Both solvers optimise SPL (weight 10000)
from the edit for ``--iters`` iterations.

- fast: ``spl_sdk.optimiser.optimise_image`` with the default solver.
- plain: DESIGN section 3 written out with torch ops and autograd, the box filter
  a 2D conv with a ones kernel divided by the window count (``conv``) or
  ``avg_pool2d(count_include_pad=False)`` (``pool``); SGD lr 1, momentum 0.9,
  NaN gradients set to 0, clamp to [-1, 1] after each step.

Each case runs in its own process; its peak memory is that process's maximum
resident set size (``ru_maxrss``), which counts torch's CPU allocations
(tracemalloc does not see them). The ``setup`` figure is the RSS high-water
mark before the solver starts (Python, torch, the two images); the solver's
own peak is the difference. Final losses are the SDK's SPL of each result.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "apps" / "examples" / "cats.png"
RADIUS, EPS, WEIGHT = 5, 1e-4, 10000.0


def make_inputs(size: int):
    """The photo at size x size and its synthetic edit, both (1, 3, N, N) float32 in [-1, 1]."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image

    with Image.open(EXAMPLE) as img:
        img = img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    source = torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1
    e01 = (0.6 * (source + 1) / 2 + 0.25) * torch.tensor([1.15, 0.95, 0.8]).view(1, 3, 1, 1)
    r = max(1, round(2 * size / 512))
    e01 = F.avg_pool2d(e01, 2 * r + 1, 1, r, count_include_pad=False)
    return source, (e01 * 2 - 1).clamp(-1, 1)


def plain_box(kind: str):
    """The plain box mean over clipped (2r+1)^2 windows."""
    import torch
    import torch.nn.functional as F

    k = 2 * RADIUS + 1
    if kind == "pool":
        return lambda x: F.avg_pool2d(x, k, 1, RADIUS, count_include_pad=False)
    ones = torch.ones(1, 1, k, k)
    return lambda x: F.conv2d(x, ones, padding=RADIUS) / F.conv2d(torch.ones_like(x), ones, padding=RADIUS)


def plain_spl(source, edited, box):
    """DESIGN.md section 3 verbatim: a, b, a', b' detached, R1 and R2 as written there."""
    intensity = ((source + 1) / 2).mean(1, keepdim=True)
    p = ((edited + 1) / 2).mean(1, keepdim=True)
    m_i, m_p, m_ip, m_ii, m_pp = (box(t) for t in (intensity, p, intensity * p, intensity * intensity, p * p))
    cov = m_ip - m_i * m_p
    a = (cov / (m_ii - m_i ** 2 + EPS)).detach()
    b = (m_p - a * m_i).detach()
    a2 = (cov / (m_pp - m_p ** 2 + EPS)).detach()
    b2 = (m_i - a2 * m_p).detach()
    r1 = m_pp + a ** 2 * m_ii + b ** 2 - 2 * a * m_ip - 2 * b * m_p + 2 * a * b * m_i
    r2 = m_ii + a2 ** 2 * m_pp + b2 ** 2 - 2 * a2 * m_ip - 2 * b2 * m_i + 2 * a2 * b2 * m_p
    return WEIGHT * (r1 + r2).mean()


def plain_refine(source, edited, iters: int, box):
    """SGD(lr=1, momentum=0.9) on autograd of plain_spl; NaN gradients zeroed; clamped."""
    import torch

    x = edited.clone().requires_grad_(True)
    opt = torch.optim.SGD([x], lr=1.0, momentum=0.9)
    for _ in range(iters):
        opt.zero_grad(set_to_none=True)
        plain_spl(source, x, box).backward()
        x.grad[torch.isnan(x.grad)] = 0.0
        opt.step()
        with torch.no_grad():
            x.clamp_(-1.0, 1.0)
    return x.detach()


def max_rss_mib() -> float:
    """This process's peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(args: argparse.Namespace) -> dict:
    """One solver at one size, in this process."""
    import torch

    from spl_losses import SPLLoss
    from spl_sdk.optimiser import optimise_image

    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.default_malloc:
        from spl_sdk.memory import keep_freed_memory

        keep_freed_memory()  # as the spl command does; applies to every case alike
    box = None if args.case == "fast" else plain_box(args.case.split("-")[1])
    # warm-up on a small image: the first call pays for lazy imports (torch.optim takes seconds)
    small = make_inputs(32)
    optimise_image(*small, [SPLLoss()], iterations=2) if box is None else plain_refine(*small, 2, box)
    source, edited = make_inputs(args.size)
    term = SPLLoss()
    with torch.no_grad():
        start_loss = float(term(source, edited))
    setup = max_rss_mib()
    reached = None
    began = time.perf_counter()
    if args.case == "fast":
        def progress(i: int, total: int, loss: float) -> None:
            nonlocal reached
            if reached is None and args.target is not None and loss <= args.target:
                reached = time.perf_counter() - began

        result = optimise_image(source, edited, [term], iterations=args.iters, progress=progress)
        seconds, image, used = time.perf_counter() - began, result.image, result.iterations
    else:
        image = plain_refine(source, edited, args.iters, box)
        seconds, used = time.perf_counter() - began, args.iters
    peak = max_rss_mib()
    with torch.no_grad():
        final = float(term(source, image))
    return {"case": args.case, "size": args.size, "seconds": seconds, "iterations": used,
            "loss_start": start_loss, "loss_final": final, "setup_mib": setup, "peak_mib": peak,
            "seconds_to_target": reached, "threads": torch.get_num_threads()}


def child(case: str, size: int, args: argparse.Namespace, target: float | None = None) -> dict:
    """Run one case in a fresh interpreter and parse its JSON line."""
    cmd = [sys.executable, __file__, "--case", case, "--size", str(size), "--iters", str(args.iters)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.default_malloc:
        cmd += ["--default-malloc"]
    if target is not None:
        cmd += ["--target", repr(target)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    """Parse options; run every case in its own process and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 2048])
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--plain-box", nargs="+", choices=["conv", "pool"], default=["conv"],
                    help="plain baselines to run (2D conv with a ones kernel, or avg_pool2d)")
    ap.add_argument("--only-fast", action="store_true", help="skip the plain baselines")
    ap.add_argument("--default-malloc", action="store_true",
                    help="leave glibc's allocator settings alone (see spl_sdk.memory)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (0: torch's default); 1 keeps timings steady on a shared machine")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--target", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(args)))
        return
    print("| size | solver | iterations | time (s) | plain / fast | start SPL | final SPL | "
          "fast: time to plain's final SPL (s) | setup RSS (MiB) | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        plains = [] if args.only_fast else [child(f"plain-{b}", size, args) for b in args.plain_box]
        target = min((p["loss_final"] for p in plains), default=None)
        fast = child("fast", size, args, target)
        for r in [fast, *plains]:
            ratio = "" if r is fast else f"{r['seconds'] / fast['seconds']:.1f}x"
            to_target = "" if r is not fast or r["seconds_to_target"] is None else f"{r['seconds_to_target']:.2f}"
            print(f"| {size}x{size} | {r['case']} | {r['iterations']} | {r['seconds']:.2f} | {ratio} | "
                  f"{r['loss_start']:.4g} | {r['loss_final']:.4g} | {to_target} | "
                  f"{r['setup_mib']:.0f} | {r['peak_mib']:.0f} |", flush=True)
    print(f"\ntorch threads: {fast['threads']}; peak RSS = ru_maxrss of the case's own process.")


if __name__ == "__main__":
    main()
