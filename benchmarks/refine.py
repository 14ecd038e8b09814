"""Refine benchmark: SPL left, time and peak memory of the default solver against plain autograd SGD, per size.

    python benchmarks/refine.py                      # 512, 2048, 2400x1600, 4096; plain baselines up to 2048
    python benchmarks/refine.py --sizes 512 --plain-box pool conv
    python benchmarks/refine.py --sizes 4096 --photos cats.png --kinds smooth   # one 4096 case
    python benchmarks/refine.py --sizes 512 4096 --reference --ref-iters 10 --plain-max 512   # speed against the paper's solver

Inputs (docs/benchmarks/refine.md): the four photos of ``apps/examples`` (none of
them used to tune the solver), as a *detailed* mosaic (the photos at their own
512 px resolution, tiled to fill the size) and as *smooth* photos (each shrunk to
1/8 of the size and upscaled back, bicubic, as an 8x upscaled image is), with a
synthetic edit: tone curve (gamma 0.7, contrast 0.8), color cast (gains
1.12/0.97/0.82 plus an offset), Gaussian blur of 5 px standard deviation.

- default: ``spl_sdk.optimizer.optimize_image`` with the default settings
  (fast solver, 100 iterations), SPL weight 10000 as ``spl refine`` uses.
- reference (``--reference``): ``optimize_image(..., solver="reference")``, the
  paper's solver as ``--solver reference`` runs it (100 SGD steps); with
  ``--ref-iters N`` only N steps are timed and the time is scaled to 100 (its
  steps all cost the same), marked ``(x100/N)``.
- plain-pool / plain-conv: the SPL of docs/method.md section 3 written with torch
  ops, box filter ``avg_pool2d`` or a ones-kernel convolution, autograd, SGD lr 1
  momentum 0.9, NaN gradients zeroed, one clamp at the end, 100 iterations.

Each case runs in its own process (peak RSS = its ``ru_maxrss``). ``left`` is the
final SPL over the starting SPL; ``own`` the source's own SPL over the starting
SPL; ``bound`` the SPL that no image can go below (``SPLLoss.lower_bound``: eps
keeps SPL above 0 in flat windows) over the starting SPL; ``excess`` = (final -
bound) / (start - bound), at most the part of the reducible loss that is left.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "apps" / "examples"
PHOTOS = ("cats.png", "marshmallow.jpg", "old_man.png", "woman.png")
SIZES = ("512", "2048", "2400x1600", "4096")
RADIUS, EPS, WEIGHT = 5, 1e-4, 10000.0


def parse_size(text: str) -> tuple[int, int]:
    """'W' or 'WxH' -> (height, width)."""
    w, _, h = text.partition("x")
    return int(h or w), int(w)


def _to_tensor(img):
    import numpy as np
    import torch

    return torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1)[None].div_(127.5).sub_(1)


def _photo(name: str):
    from PIL import Image

    with Image.open(EXAMPLES / name) as img:
        return img.convert("RGB")


def smooth_source(name: str, h: int, w: int):
    """The photo cropped to the aspect ratio, shrunk to 1/8 of (h, w) and upscaled back (bicubic)."""
    from PIL import Image

    img = _photo(name)
    pw, ph = img.size
    if pw * h > ph * w:
        cw = ph * w // h
        img = img.crop(((pw - cw) // 2, 0, (pw - cw) // 2 + cw, ph))
    else:
        ch = pw * h // w
        img = img.crop((0, (ph - ch) // 2, pw, (ph - ch) // 2 + ch))
    small = img.resize((max(8, w // 8), max(8, h // 8)), Image.Resampling.LANCZOS)
    return _to_tensor(small.resize((w, h), Image.Resampling.BICUBIC))


def detailed_source(h: int, w: int):
    """The four photos at their own resolution, tiled (every other one mirrored) to fill (h, w)."""
    import torch

    tiles = [_to_tensor(_photo(n)) for n in PHOTOS]
    out = torch.empty(1, 3, h, w)
    k = 0
    for y in range(0, h, 512):
        for x in range(0, w, 512):
            t = tiles[k % len(tiles)].flip(-1) if (k // len(tiles)) % 2 else tiles[k % len(tiles)]
            out[..., y:y + 512, x:x + 512] = t[..., :min(512, h - y), :min(512, w - x)]
            k += 1
    return out


def synthetic_edit(source, sigma: float = 5.0):
    """Tone curve, color cast and a Gaussian blur of ``sigma`` px, in [-1, 1]."""
    import torch
    import torch.nn.functional as F

    x = source.add(1).mul_(0.5).pow_(0.7).sub_(0.5).mul_(0.8).add_(0.5)
    x.mul_(torch.tensor([1.12, 0.97, 0.82]).view(1, 3, 1, 1)).add_(torch.tensor([0.0, 0.02, 0.05]).view(1, 3, 1, 1))
    r = int(3 * sigma + 0.5)
    k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sigma ** 2))
    k /= k.sum()
    # separable, one plane at a time, as a sum of shifted copies: conv2d's im2col buffer would
    # take 2r + 1 times the plane (2 GiB at 4096 x 4096) and dominate the peak memory
    for c in range(3):
        plane = x[:, c:c + 1]
        for dim, pad in ((3, (r, r, 0, 0)), (2, (0, 0, r, r))):
            padded = F.pad(plane, pad, mode="replicate")
            n = plane.shape[dim]
            plane.zero_()
            for i in range(2 * r + 1):
                plane.add_(padded.narrow(dim, i, n), alpha=float(k[i]))
            del padded
    return x.mul_(2).sub_(1).clamp_(-1, 1)


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
    """docs/method.md section 3 verbatim: a, b, a', b' detached, R1 and R2 as written there."""
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
    """SGD(lr=1, momentum=0.9) on autograd of plain_spl; NaN gradients zeroed; one clamp at the end."""
    import torch

    x = edited.clone().requires_grad_(True)
    opt = torch.optim.SGD([x], lr=1.0, momentum=0.9)
    for _ in range(iters):
        opt.zero_grad(set_to_none=True)
        plain_spl(source, x, box).backward()
        x.grad[torch.isnan(x.grad)] = 0.0
        opt.step()
    return x.detach().clamp_(-1.0, 1.0)


def max_rss_mib() -> float:
    """This process's peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(args: argparse.Namespace) -> dict:
    """One solver on one input, in this process."""
    import torch

    from spl_losses import SPLLoss
    from spl_sdk.memory import keep_freed_memory
    from spl_sdk.optimizer import optimize_image

    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the spl command does
    box = plain_box(args.case.split("-")[1]) if args.case.startswith("plain-") else None
    small = synthetic_edit(detailed_source(32, 32))  # warm-up: lazy imports (torch.optim takes seconds)
    solver = "reference" if args.case == "reference" else "fast"
    optimize_image(detailed_source(32, 32), small, [SPLLoss()], iterations=2, solver=solver) if box is None else \
        plain_refine(detailed_source(32, 32), small, 2, box)
    h, w = parse_size(args.size)
    source = detailed_source(h, w) if args.photo == "mosaic" else smooth_source(args.photo, h, w)
    edited = synthetic_edit(source)  # a new tensor: source is left as it is
    term = SPLLoss()
    setup = max_rss_mib()
    began, cpu_began = time.perf_counter(), time.process_time()
    if args.case == "reference":
        result = optimize_image(source, edited, [term], iterations=args.ref_iters, solver="reference")
        image, used = result.image, result.iterations
    elif box is None:
        result = optimize_image(source, edited, [term], iterations=args.iters)
        image, used = result.image, result.iterations
    else:
        image, used = plain_refine(source, edited, args.iters, box), args.iters
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    if args.case == "reference" and args.ref_iters != args.iters:
        # every SGD step costs the same: scale the timed ones to the full run
        seconds, cpu = seconds * args.iters / args.ref_iters, cpu * args.iters / args.ref_iters
    peak = max_rss_mib()  # before the losses below, which are the benchmark's, not the solver's
    with torch.no_grad():
        final = float(term(source, image))
        del image
        start, own = float(term(source, edited)), float(term(source, source))
        bound = term.lower_bound(source)
    return {"case": args.case, "size": args.size, "photo": args.photo, "seconds": seconds, "cpu_seconds": cpu, "iterations": used,
            "start": start, "final": final, "left": final / start, "own": own / start, "bound": bound / start,
            "excess": (final - bound) / (start - bound), "setup_mib": setup, "peak_mib": peak,
            "threads": torch.get_num_threads()}


def child(case: str, size: str, photo: str, args: argparse.Namespace) -> dict:
    """Run one case in a fresh interpreter and parse its JSON line."""
    cmd = [sys.executable, __file__, "--case", case, "--size", size, "--photo", photo,
           "--iters", str(args.iters), "--ref-iters", str(args.ref_iters), "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    """Parse options; run every case in its own process and print one table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), help="W or WxH (default: %(default)s)")
    ap.add_argument("--photos", nargs="+", default=list(PHOTOS), choices=PHOTOS, help="photos for smooth cases")
    ap.add_argument("--kinds", nargs="+", default=["detailed", "smooth"], choices=["detailed", "smooth"])
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--plain-box", nargs="*", choices=["conv", "pool"], default=["pool"],
                    help="plain baselines to run (avg_pool2d, or a 2D convolution with a ones kernel)")
    ap.add_argument("--plain-max", type=int, default=2048,
                    help="run the plain baselines only up to this long side (they take ~20 min at 4096)")
    ap.add_argument("--reference", action="store_true", help="also run the SDK's reference solver (the paper's)")
    ap.add_argument("--ref-iters", type=int, default=100,
                    help="SGD steps of the reference to time; the time is scaled to --iters (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--size", help=argparse.SUPPRESS)
    ap.add_argument("--photo", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(args)))
        return
    print("| size | input | solver | evaluations | time (s) | CPU time (s) | plain / default | SPL left | "
          "own | bound | excess | setup RSS (MiB) | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        inputs = (["mosaic"] if "detailed" in args.kinds else []) + \
                 ([f"{p}" for p in args.photos] if "smooth" in args.kinds else [])
        for photo in inputs:
            default = child("default", size, photo, args)
            plains = [child("reference", size, photo, args)] if args.reference else []
            plains += [child(f"plain-{b}", size, photo, args) for b in args.plain_box
                       if max(parse_size(size)) <= args.plain_max]
            for r in [default, *plains]:
                ratio = "" if r is default else f"{r['seconds'] / default['seconds']:.1f}x"
                if r["case"] == "reference" and args.ref_iters != args.iters:
                    ratio += f" (x{args.iters}/{args.ref_iters})"
                label = "mosaic (detailed)" if photo == "mosaic" else f"{photo} (smooth)"
                print(f"| {size} | {label} | {r['case']} | {r['iterations']} | {r['seconds']:.2f} | "
                      f"{r['cpu_seconds']:.2f} | {ratio} | "
                      f"{r['left']:.2%} | {r['own']:.2%} | {r['bound']:.2%} | {r['excess']:.2%} | {r['setup_mib']:.0f} | "
                      f"{r['peak_mib']:.0f} |", flush=True)
    print(f"\ntorch threads: {default['threads']}; peak RSS = ru_maxrss of the case's own process.")


if __name__ == "__main__":
    main()
