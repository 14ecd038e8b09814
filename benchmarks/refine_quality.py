"""Refine quality benchmark: distance to a known ideal, not the loss, for each solver and baseline.

    python benchmarks/refine_quality.py --quick                 # ~1-2 min, one core: 256 px, bundled photos
    python benchmarks/refine_quality.py                         # 512 px and 2x upscaled, every edit
    python benchmarks/refine_quality.py --photos skimage        # the tuning photos (scikit-image's samples)
    python benchmarks/refine_quality.py --folder ~/photos --plot quality.png --table quality.md

Each case is a photo S, a color transform T and a degradation D. The edit is
D(T(S)); the ideal result is T(S): the photo's exact structure with the edit's
colors, which is what refine is for. Reported to the ideal, on the interior (a
16 px border left out): PSNR (dB), SSIM (scikit-image, on the [0, 1] RGB
image) and an edge score (correlation of the Sobel gradient magnitudes of the
intensities, 1 = the ideal's edges). Methods: the input itself, ``default``
(``optimize_image`` with ``spl refine``'s settings), ``reference`` (the paper's
100 SGD steps), ``guided`` (one guided filter pass of the edit, gray guide = the
source's intensity, r 5, eps 1e-4, per channel), and the variants named by
``--methods``.

Photos: ``bundled`` = the four photos of ``apps/examples`` (held out: not used
to choose any setting); ``skimage`` = astronaut, coffee, chelsea, rocket from
``skimage.data`` (the tuning set); ``--folder`` adds every image of a folder.
``--injection`` poses loss injection's problem instead: the reference is the
source's round trip (2x down and up), the ideal the color change of that.
Sizes: each photo's long side brought to ``--size`` (native detail), and
``smooth``: shrunk to half that and upscaled 2x (bicubic) to ``--size`` times
``--upscale`` (an upscaled photo, little high-frequency detail).
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "apps" / "examples"
BUNDLED = ("cats.png", "marshmallow.jpg", "old_man.png", "woman.png")
SKIMAGE = ("astronaut", "coffee", "chelsea", "rocket")
EDITS = ("box", "gauss-jpeg", "vae", "relight", "collage")
BORDER = 16


# ---------------------------------------------------------------- inputs

def _to_tensor(arr: np.ndarray):
    """uint8/float HxWx3 in [0, 255] -> (1, 3, H, W) float32 in [0, 1]."""
    import torch

    return torch.from_numpy(np.asarray(arr, dtype=np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()


def load_photos(which: str, folder: Path | None) -> list[tuple[str, object]]:
    """(name, PIL RGB image) for the chosen set, plus a folder's images."""
    from PIL import Image

    photos = []
    if which in ("bundled", "all"):
        for name in BUNDLED:
            with Image.open(EXAMPLES / name) as img:
                photos.append((Path(name).stem, img.convert("RGB")))
    if which in ("skimage", "all"):
        import skimage.data

        for name in SKIMAGE:
            photos.append((name, Image.fromarray(getattr(skimage.data, name)()).convert("RGB")))
    if folder is not None:
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"):
                with Image.open(path) as img:
                    photos.append((path.stem, img.convert("RGB")))
    return photos


def sized(img, long_side: int, smooth: bool, upscale: int):
    """The photo at ``long_side`` (native detail), or shrunk to it and upscaled ``upscale`` x (smooth)."""
    from PIL import Image

    w, h = img.size
    k = long_side / max(w, h)
    w2, h2 = max(16, round(w * k)) // 8 * 8, max(16, round(h * k)) // 8 * 8
    base = img.resize((w2, h2), Image.Resampling.LANCZOS)
    if smooth:
        base = base.resize((w2 * upscale, h2 * upscale), Image.Resampling.BICUBIC)
    return _to_tensor(np.asarray(base))


def tone_cast(x01):
    """Tone curve (gamma 0.7, contrast 0.8) and a color cast (gains and offsets per channel)."""
    import torch

    y = x01.clamp(0, 1).pow(0.7).sub(0.5).mul(0.8).add(0.5)
    y = y * torch.tensor([1.12, 0.97, 0.82]).view(1, 3, 1, 1) + torch.tensor([0.0, 0.02, 0.05]).view(1, 3, 1, 1)
    return y.clamp(0, 1)


def relight(x01, seed: int):
    """Tone and cast, then a smooth spatially varying gain (0.55 to 1.35, slightly tinted)."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    h, w = x01.shape[-2:]
    field = F.interpolate(torch.rand(1, 1, 3, 4, generator=g), size=(h, w), mode="bicubic", align_corners=True)
    field = 0.55 + 0.8 * (field - field.min()) / (field.max() - field.min() + 1e-8)
    tint = torch.tensor([1.0, 0.96, 0.9]).view(1, 3, 1, 1)
    return (tone_cast(x01) * field * (tint + (1 - tint) * field)).clamp(0, 1)


def gaussian_blur(x, sigma: float):
    """Separable Gaussian blur, replicate borders."""
    import torch
    import torch.nn.functional as F

    r = max(1, int(3 * sigma + 0.5))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def box_blur(x, k: int):
    """k x k box mean, clipped at the borders."""
    import torch.nn.functional as F

    return F.avg_pool2d(x, k, 1, k // 2, count_include_pad=False)


def jpeg(x01, quality: int):
    """A JPEG round trip at ``quality``."""
    from PIL import Image

    arr = (x01[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as img:
        return _to_tensor(np.asarray(img.convert("RGB")))


def vae_like(x01, seed: int):
    """What a VAE round trip does to detail: 4x area down, bicubic up, mild noise."""
    import torch
    import torch.nn.functional as F

    h, w = x01.shape[-2:]
    small = F.interpolate(x01, size=(h // 4, w // 4), mode="area")
    up = F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)
    g = torch.Generator().manual_seed(seed)
    return (up + 0.01 * torch.randn(up.shape, generator=g)).clamp(0, 1)


def collage(x01):
    """The photo with 1-px detail pasted into its four corners: stripes, a checkerboard, dots and text."""
    import torch
    from PIL import Image, ImageDraw

    out = x01.clone()
    h, w = x01.shape[-2:]
    t = max(24, min(h, w) // 5)
    yy, xx = torch.meshgrid(torch.arange(t), torch.arange(t), indexing="ij")
    lo, hi = 0.25, 0.8
    patterns = [
        torch.where(xx % 2 == 0, hi, lo),                       # 1-px vertical stripes
        torch.where((xx + yy) % 2 == 0, hi, lo),                # 1-px checkerboard
        torch.where((xx % 3 == 0) & (yy % 3 == 0), hi, lo),     # 1-px dots
    ]
    img = Image.new("L", (t, t), int(lo * 255))
    draw = ImageDraw.Draw(img)
    for row in range(0, t, 9):
        draw.text((1, row), "spl refine 0123", fill=int(hi * 255))
    patterns.append(torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0))
    corners = [(0, 0), (0, w - t), (h - t, 0), (h - t, w - t)]
    for (y, x), p in zip(corners, patterns, strict=True):
        out[..., y + BORDER:y + t, x + BORDER:x + t] = p[BORDER:, BORDER:] if x == 0 else p[BORDER:, :t - BORDER]
    return out


def round_trip(x01):
    """A stand-in for the VAE round trip of the source: 2x area down, bicubic up (detail lost, no noise)."""
    import torch.nn.functional as F

    h, w = x01.shape[-2:]
    return F.interpolate(F.interpolate(x01, size=(h // 2, w // 2), mode="area"), size=(h, w), mode="bicubic",
                         align_corners=False).clamp(0, 1)


def make_case(edit: str, photo01, seed: int, injection: bool = False):
    """(source, edit, ideal) in [0, 1] for one edit kind.

    ``injection``: the situation of loss injection inside an edit, where the
    reference is the source's VAE round trip; the source returned is that round
    trip and the ideal is the color change of it (all the structure there is).
    """
    if edit == "collage":
        photo01 = collage(photo01)
    color = (lambda x: relight(x, seed)) if edit == "relight" else tone_cast
    ideal = color(photo01)
    if edit == "box":
        degraded = box_blur(ideal, 5)
    elif edit == "gauss-jpeg":
        degraded = jpeg(gaussian_blur(ideal, 1.5), 70)
    elif edit == "vae":
        degraded = vae_like(ideal, seed)
    elif edit == "relight":
        degraded = box_blur(ideal, 5)
    elif edit == "collage":
        degraded = gaussian_blur(ideal, 0.8)
    else:
        raise ValueError(edit)
    if injection:
        photo01 = round_trip(photo01)
        ideal = color(photo01)
    return photo01, degraded.clamp(0, 1), ideal


# ---------------------------------------------------------------- metrics

def _interior(x):
    return x[..., BORDER:-BORDER, BORDER:-BORDER]


def psnr(a01, b01) -> float:
    """PSNR in dB of two [0, 1] images, interior only."""
    mse = float((_interior(a01) - _interior(b01)).double().pow(2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def ssim(a01, b01) -> float:
    """Mean SSIM (scikit-image) over RGB, interior only."""
    from skimage.metrics import structural_similarity

    a = _interior(a01)[0].permute(1, 2, 0).double().numpy()
    b = _interior(b01)[0].permute(1, 2, 0).double().numpy()
    return float(structural_similarity(a, b, channel_axis=2, data_range=1.0))


def edge_score(a01, ideal01) -> float:
    """Correlation of the Sobel gradient magnitudes of the intensities (1 = the ideal's edges)."""
    import torch
    import torch.nn.functional as F

    def magnitude(x):
        i = x.mean(1, keepdim=True)
        kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]).view(1, 1, 3, 3)
        gx, gy = F.conv2d(i, kx), F.conv2d(i, kx.transpose(-1, -2))
        return _interior((gx * gx + gy * gy).sqrt()).double().flatten()

    a, b = magnitude(a01), magnitude(ideal01)
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm() + 1e-12))


# ---------------------------------------------------------------- methods

def _refine(solver: str, **knobs) -> Callable:
    def run(source01, edit01):
        from spl_losses import SPLLoss
        from spl_sdk.optimizer import optimize_image

        result = optimize_image(source01 * 2 - 1, edit01 * 2 - 1, [SPLLoss()], solver=solver, **knobs)
        return (result.image + 1) / 2
    return run


def guided(source01, edit01, r: int = 5, eps: float = 1e-4):
    """One guided filter pass of the edit, per channel, the source's intensity as the gray guide."""
    from spl_sdk.filters import guided_filter, to_gray

    return guided_filter(to_gray(source01), edit01, r, eps).clamp(0, 1)


METHODS: dict[str, Callable] = {
    "input": lambda source01, edit01: edit01,
    "default": _refine("fast"),
    "reference": _refine("reference"),
    "guided": guided,
}


# ---------------------------------------------------------------- report

def run(args: argparse.Namespace) -> list[dict]:
    """Every (photo, size, edit) case through every method; one row per case and method."""
    import torch

    torch.set_num_threads(args.threads)
    photos = load_photos(args.photos, args.folder)
    rows = []
    sizes = [("native", False)] + ([("smooth", True)] if not args.no_smooth else [])
    for seed, (name, img) in enumerate(photos):
        for kind, smooth in sizes:
            photo = sized(img, args.size, smooth, args.upscale)
            for edit in args.edits:
                source, degraded, ideal = make_case(edit, photo, seed, args.injection)
                for method in args.methods:
                    began = time.perf_counter()
                    with torch.no_grad() if method in ("input", "guided") else torch.enable_grad():
                        out = METHODS[method](source, degraded)
                    seconds = time.perf_counter() - began
                    row = {"photo": name, "size": f"{source.shape[-1]}x{source.shape[-2]}", "kind": kind,
                           "edit": edit, "method": method, "psnr": psnr(out, ideal),
                           "ssim": ssim(out, ideal), "edge": edge_score(out, ideal), "seconds": seconds}
                    rows.append(row)
                    if args.verbose:
                        print(f"{name} {kind} {edit} {method}: {row['psnr']:.2f} dB, SSIM {row['ssim']:.4f}, "
                              f"edge {row['edge']:.4f}, {seconds:.2f} s", file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict], methods: list[str]) -> str:
    """Markdown: PSNR per case and method, then the means (PSNR, SSIM, edge, time) and the worst gain."""
    cases = sorted({(r["photo"], r["kind"], r["size"], r["edit"]) for r in rows},
                   key=lambda c: (c[1], c[0], EDITS.index(c[3]) if c[3] in EDITS else 99))
    by = {(r["photo"], r["kind"], r["size"], r["edit"], r["method"]): r for r in rows}
    lines = ["| photo | size | edit | " + " | ".join(methods) + " |", "|---|---|---|" + "---|" * len(methods)]
    for c in cases:
        cells = [f"{by[(*c, m)]['psnr']:.2f}" for m in methods]
        lines.append(f"| {c[0]} | {c[2]} ({c[1]}) | {c[3]} | " + " | ".join(cells) + " |")
    lines += ["", "| method | mean PSNR (dB) | mean SSIM | mean edge | worst PSNR gain over input (dB) | "
                  "cases below input | total time (s) |", "|---|---|---|---|---|---|---|"]
    for m in methods:
        ps = [by[(*c, m)]["psnr"] for c in cases]
        gains = [by[(*c, m)]["psnr"] - by[(*c, "input")]["psnr"] for c in cases] if "input" in methods else [0.0]
        lines.append(f"| {m} | {np.mean(ps):.2f} | {np.mean([by[(*c, m)]['ssim'] for c in cases]):.4f} | "
                     f"{np.mean([by[(*c, m)]['edge'] for c in cases]):.4f} | {min(gains):+.2f} | "
                     f"{sum(g < 0 for g in gains)} of {len(cases)} | "
                     f"{sum(by[(*c, m)]['seconds'] for c in cases):.1f} |")
    return "\n".join(lines)


def plot(rows: list[dict], methods: list[str], path: Path) -> None:
    """PSNR gain over the input per case (bars per method), saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = sorted({(r["photo"], r["kind"], r["edit"]) for r in rows})
    by = {(r["photo"], r["kind"], r["edit"], r["method"]): r["psnr"] for r in rows}
    shown = [m for m in methods if m != "input"]
    fig, ax = plt.subplots(figsize=(max(8, 0.45 * len(cases) * max(1, len(shown)) / 2), 4.5))
    width = 0.8 / max(1, len(shown))
    for i, m in enumerate(shown):
        gains = [by[(*c, m)] - by[(*c, "input")] for c in cases]
        ax.bar(np.arange(len(cases)) + i * width - 0.4 + width / 2, gains, width, label=m)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(cases)), [f"{p} {k[0]} {e}" for p, k, e in cases], rotation=70, fontsize=7)
    ax.set_ylabel("PSNR to the ideal minus the input's (dB)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    """Parse options, run the cases, print the table (and write it and the plot where asked)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="256 px, native detail only (~1 min on one core)")
    ap.add_argument("--photos", choices=["bundled", "skimage", "all", "none"], default="bundled")
    ap.add_argument("--folder", type=Path, help="also every image in this folder")
    ap.add_argument("--size", type=int, default=512, help="long side of the native-detail cases")
    ap.add_argument("--upscale", type=int, default=2, help="factor of the smooth (upscaled) cases")
    ap.add_argument("--no-smooth", action="store_true", help="native-detail cases only")
    ap.add_argument("--edits", nargs="+", choices=EDITS, default=list(EDITS))
    ap.add_argument("--methods", nargs="+", choices=list(METHODS),
                    default=["input", "default", "reference", "guided"])
    ap.add_argument("--injection", action="store_true",
                    help="loss injection's situation: refine against the source's (simulated) VAE round trip")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--table", type=Path, help="also write the markdown table here")
    ap.add_argument("--plot", type=Path, help="write a bar plot of the PSNR gains here (PNG)")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per case on stderr")
    args = ap.parse_args()
    if args.quick:
        args.size, args.no_smooth = 256, True
    if "input" not in args.methods:
        args.methods.insert(0, "input")
    rows = run(args)
    text = table(rows, args.methods)
    print(text)
    if args.table:
        args.table.write_text(text + "\n")
    if args.plot:
        plot(rows, args.methods, args.plot)


if __name__ == "__main__":
    main()
