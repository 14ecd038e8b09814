"""Benchmark: guided vs bilinear upsampling of attention-like masks on composites with a known truth.

Each composite pastes a textured shape (ellipse, blob, star or rotated
rectangle cut from one example photo) onto another example photo, so the true
mask is known. The true mask is reduced to the attention grid the way a
cross-attention map would see it (area average at 1/32 of the working size,
long side 16 cells, then a blur and noise so it is soft), placed in the token
column of the word "shape" of the prompt "a photo of a shape", and handed to
the registered mask extractors exactly as the editor would. Reported: IoU and
boundary F-score of the mask thresholded at 0.5, at full size, against the truth.

    python benchmarks/masks.py [--count 20] [--seed 0] [--variant]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from spl_sdk import get_plugins
from spl_sdk.components import AttentionMaps, MaskContext
from spl_sdk.imageio import load_image, pil_to_tensor

EXAMPLES = Path(__file__).resolve().parents[1] / "apps" / "examples"
SIZES = [(512, 512), (384, 640), (640, 448), (600, 400), (768, 1024)]  # (H, W), non-square included
SHAPES = ["ellipse", "blob", "star", "rectangle"]
EXTRACTORS = ["cross-attention", "cross-attention-bilinear"]
VARIANT = "cross-attention, eps 1e-3"  # not a plug-in: the guided path with a smaller regularizer
PROMPT, WORD = "a photo of a shape", "shape"
ATTENTION_LONG_SIDE = 16  # cells of the 16x16 attention layers at a 512-px working size


def cover(img: Image.Image, size: tuple[int, int], flip: bool) -> torch.Tensor:
    """Photo scaled to cover ``size`` = (H, W), center-cropped, optionally mirrored, in [-1, 1]."""
    h, w = size
    scale = max(h / img.height, w / img.width)
    img = img.resize((math.ceil(img.width * scale), math.ceil(img.height * scale)), Image.Resampling.LANCZOS)
    left, top = (img.width - w) // 2, (img.height - h) // 2
    img = img.crop((left, top, left + w, top + h))
    t = pil_to_tensor(img)
    return t.flip(-1) if flip else t


def shape_polygon(kind: str, rng: np.random.Generator, size: tuple[int, int]) -> list[tuple[float, float]]:
    """Outline of a random shape of ``kind`` inside an image of ``size`` = (H, W)."""
    h, w = size
    radius = rng.uniform(0.18, 0.32) * min(h, w)
    cx = rng.uniform(radius * 1.1, w - radius * 1.1)
    cy = rng.uniform(radius * 1.1, h - radius * 1.1)
    rot = rng.uniform(0, 2 * np.pi)
    theta = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    if kind == "ellipse":
        rx, ry = radius, radius * rng.uniform(0.5, 0.9)
        pts = np.stack([rx * np.cos(theta), ry * np.sin(theta)], 1)
    elif kind == "blob":
        r = np.ones_like(theta)
        for k in range(2, 6):
            r += rng.uniform(0.03, 0.12) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        pts = np.stack([radius * r * np.cos(theta), radius * r * np.sin(theta)], 1) * 0.85
    elif kind == "star":
        n = int(rng.integers(5, 8))
        ang = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False)
        r = np.where(np.arange(2 * n) % 2 == 0, radius, radius * rng.uniform(0.45, 0.6))
        pts = np.stack([r * np.cos(ang), r * np.sin(ang)], 1)
    else:
        half = np.array([radius, radius * rng.uniform(0.45, 0.8)])
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
    c, s = np.cos(rot), np.sin(rot)
    pts = pts @ np.array([[c, s], [-s, c]]) + np.array([cx, cy])
    return [tuple(p) for p in pts]


def composite(index: int, seed: int, photos: list[Image.Image]) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(image (1,3,H,W) in [-1,1], true mask (1,1,H,W) in {0,1}, shape kind) of composite ``index``."""
    rng = np.random.default_rng(seed * 1000 + index)
    size = SIZES[index % len(SIZES)]
    kind = SHAPES[(index // len(SIZES) + index) % len(SHAPES)]
    bg, fg = rng.choice(len(photos), 2, replace=False)
    back = cover(photos[bg], size, bool(rng.integers(2)))
    fore = cover(photos[fg], size, bool(rng.integers(2)))
    canvas = Image.new("L", (size[1], size[0]), 0)
    ImageDraw.Draw(canvas).polygon(shape_polygon(kind, rng, size), fill=255)
    truth = torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255)[None, None]
    return back * (1 - truth) + fore * truth, truth, kind


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (1, 1, h, w) with replicated borders."""
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-t * t / (2 * sigma * sigma))
    k = k / k.sum()
    x = F.pad(x, (r, r, r, r), mode="replicate")
    return F.conv2d(F.conv2d(x, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))


def attention_like(truth: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A soft (h, w) map of the truth on the attention grid: area average, blur, noise."""
    h, w = truth.shape[-2:]
    grid = (max(1, round(ATTENTION_LONG_SIDE * h / max(h, w))), max(1, round(ATTENTION_LONG_SIDE * w / max(h, w))))
    m = F.interpolate(truth, size=grid, mode="area")
    m = gaussian_blur(m, 0.7)
    noise = torch.from_numpy(rng.uniform(0, 1, grid).astype(np.float32))[None, None]
    m = (m + 0.15 * gaussian_blur(noise, 0.7)).clamp(min=0)
    return m[0, 0]


def attention_maps(word_map: torch.Tensor, column: int, rng: np.random.Generator) -> AttentionMaps:
    """(h, w, 77) maps with ``word_map`` in ``column`` and weak random attention elsewhere."""
    h, w = word_map.shape
    maps = torch.from_numpy(rng.uniform(0, 0.02, (h, w, 77)).astype(np.float32))
    maps[..., column] = word_map / word_map.max() * 0.3
    return AttentionMaps(source=maps, target=maps.clone(), res=max(h, w))


def boundary(mask: torch.Tensor) -> torch.Tensor:
    """Inner boundary of a boolean (1, 1, H, W) mask (pixels with a 4-neighbor outside)."""
    m = mask.float()
    eroded = -F.max_pool2d(-F.pad(m, (1, 1, 1, 1), value=1.0), 3, stride=1)
    return mask & (eroded < 0.5)


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Boolean dilation by a disk of ``radius`` pixels."""
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    disk = ((t[:, None] ** 2 + t[None, :] ** 2) <= radius * radius + 1e-6).float()[None, None]
    return F.conv2d(mask.float(), disk, padding=radius) > 0.5


def boundary_f(pred: torch.Tensor, truth: torch.Tensor, tol: int) -> float:
    """Boundary F-score: boundary pixels of each mask within ``tol`` px of the other's boundary."""
    bp, bt = boundary(pred), boundary(truth)
    if not bp.any() or not bt.any():
        return float(bp.any() == bt.any())
    precision = (bp & dilate(bt, tol)).sum().item() / bp.sum().item()
    recall = (bt & dilate(bp, tol)).sum().item() / bt.sum().item()
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def iou(pred: torch.Tensor, truth: torch.Tensor) -> float:
    """Intersection over union of two boolean masks."""
    union = (pred | truth).sum().item()
    return 1.0 if union == 0 else (pred & truth).sum().item() / union


def run(count: int, seed: int, variant: bool = False) -> dict[str, dict[str, list]]:
    """Metrics per extractor over ``count`` composites."""
    from spl_backbones.tokenizer import build_clip_tokenizer  # the real CLIP tokenizer, offline

    tokenizer = build_clip_tokenizer()
    column = tokenizer(PROMPT).input_ids.index(tokenizer(WORD, add_special_tokens=False).input_ids[0])
    plugins = get_plugins()
    words = {"words_source": [WORD]}  # the extractors' own option
    extractors = {name: plugins.mask_extractor(name)(options=words) for name in EXTRACTORS}
    if variant:
        guided = plugins.mask_extractor(EXTRACTORS[0])
        extractors[VARIANT] = guided(options=guided.Options(eps=1e-3, **words))
    photos = [load_image(p) for p in sorted(EXAMPLES.glob("*.*"))]
    results = {name: {"iou": [], "bf2": [], "bfd": [], "ms": [], "kind": []} for name in extractors}
    for i in range(count):
        image, truth, kind = composite(i, seed, photos)
        rng = np.random.default_rng(seed * 1000 + 500 + i)
        maps = attention_maps(attention_like(truth, rng), column, rng)
        context = MaskContext(source_image=image, source_prompt=PROMPT, target_prompt=PROMPT,
                              first_result=image, attention=maps, tokenizer=tokenizer)
        t = truth > 0.5
        diag_tol = max(1, round(0.005 * math.hypot(*t.shape[-2:])))
        for name, extractor in extractors.items():
            start = time.perf_counter()
            mask = extractor.extract(context)
            results[name]["ms"].append(1000 * (time.perf_counter() - start))
            results[name]["kind"].append(kind)
            assert mask.shape == truth.shape, (name, mask.shape, truth.shape)
            pred = mask >= 0.5
            results[name]["iou"].append(iou(pred, t))
            results[name]["bf2"].append(boundary_f(pred, t, 2))
            results[name]["bfd"].append(boundary_f(pred, t, diag_tol))
    return results


def table(results: dict[str, dict[str, list]], count: int) -> str:
    """Markdown table of the mean metrics per extractor, overall and per shape."""
    lines = ["| extractor | shapes | IoU | boundary F (2 px) | boundary F (0.5% diag) | median ms / mask |",
             "|---|---|---|---|---|---|"]
    for group in ["all", *SHAPES]:
        for name, r in results.items():
            keep = [group in ("all", k) for k in r["kind"]]
            if not any(keep):
                continue
            mean = {k: np.mean([v for v, ok in zip(r[k], keep, strict=True) if ok]) for k in ("iou", "bf2", "bfd")}
            ms = np.median([v for v, ok in zip(r["ms"], keep, strict=True) if ok])
            label = f"all {count}" if group == "all" else f"{group} ({sum(keep)})"
            lines.append(f"| {name} | {label} | {mean['iou']:.4f} | {mean['bf2']:.4f} | {mean['bfd']:.4f} | {ms:.0f} |")
    lines.append("")
    bilinear = results[EXTRACTORS[1]]
    for name in [n for n in results if n != EXTRACTORS[1]]:
        wins = {k: sum(g > b for g, b in zip(results[name][k], bilinear[k], strict=True))
                for k in ("iou", "bf2", "bfd")}
        lines.append(f"{name} better than bilinear on {wins['iou']}/{count} composites (IoU), "
                     f"{wins['bf2']}/{count} (boundary F 2 px), {wins['bfd']}/{count} (boundary F 0.5% diag).  ")
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20, help="number of composites")
    parser.add_argument("--seed", type=int, default=0, help="seed of shapes, placement and noise")
    parser.add_argument("--variant", action="store_true",
                        help=f"also run '{VARIANT}' (guided-filter eps 1e-3 instead of the default 1e-2)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    print(table(run(args.count, args.seed, args.variant), args.count))


if __name__ == "__main__":
    main()
