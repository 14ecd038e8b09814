"""Score pairs with PIE-Bench's metrics: one dict of numbers per pair (NaN where undefined)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from spl_sdk.lazy import numpy as np
from spl_sdk.metrics.pairs import Pair, edited_region

METRICS = ("structure_distance", "psnr", "lpips", "mse", "ssim", "clip_whole", "clip_edited")
BACKGROUND = ("psnr", "lpips", "mse", "ssim")
NAN = float("nan")


def _rgb(path: str, size: tuple[int, int] | None = None) -> np.ndarray:
    from PIL import Image

    from spl_sdk.imageio import load_image

    img = load_image(path)
    if size is not None and img.size != size:
        img = img.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(img)


def score_pair(pair: Pair, nets: Any) -> dict[str, float]:
    """PIE-Bench's metrics of one pair; the background ones are NaN when the mask covers all."""
    from spl_sdk.metrics import neural, pixel

    source = _rgb(pair.source)
    size = (source.shape[1], source.shape[0])
    edited = _rgb(pair.edited, size)  # an edit at another size is compared at the source's
    mask = edited_region(pair, size)
    out = dict.fromkeys(METRICS, NAN)
    out["structure_distance"] = neural.structure_distance(nets.dino, source, edited)
    prompted = bool(pair.target_prompt.strip())  # a refine row has none: its CLIP scores stay empty
    if prompted:
        out["clip_whole"] = neural.clip_score(nets, edited, pair.target_prompt)
    if mask is not None:
        keep = ~mask
        if keep.any():  # an all-covering mask has no background: left out of the means
            out.update(psnr=pixel.psnr(source, edited, keep), mse=pixel.mse(source, edited, keep),
                       ssim=pixel.ssim(source, edited, keep),
                       lpips=pixel.lpips_distance(nets.lpips, source, edited, keep))
        if mask.any() and prompted:
            out["clip_edited"] = neural.clip_score(nets, edited, pair.target_prompt, mask)
    return out


def score_pairs(pairs: Sequence[Pair], nets: Any,
                progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """One row per pair (id, edit type, paths, metrics, error); a pair that fails gets its error."""
    from spl_sdk.jobs.worker import one_line

    rows = []
    for i, pair in enumerate(pairs, 1):
        row: dict[str, Any] = {"id": pair.id, "edit_type": pair.edit_type, "source": pair.source,
                               "edited": pair.edited, "target_prompt": pair.target_prompt}
        try:
            row.update(score_pair(pair, nets), error=None)
        except Exception as exc:  # one unreadable image must not stop the evaluation
            row.update(dict.fromkeys(METRICS, NAN), error=one_line(exc))
        rows.append(row)
        if progress is not None:
            progress(i, len(pairs))
    return rows


def empty_metrics(summaries: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Metrics no row of any method has a value for (no masks, no target prompts)."""
    return [m for m in METRICS if all(stats.get(m) is None for s in summaries.values() for stats in s.values())]


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per edit type (and 'all'): the mean of each metric over rows where it is defined, and counts."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(str(row["edit_type"]), []).append(row)
    out: dict[str, dict[str, Any]] = {}
    items = sorted(groups.items())
    if "all" not in groups:
        items.append(("all", list(rows)))
    for name, members in items:
        stats: dict[str, Any] = {"n": len(members)}
        for metric in METRICS:
            values = [r[metric] for r in members if isinstance(r.get(metric), (int, float))
                      and not math.isnan(r[metric])]
            stats[metric] = float(np.mean(values)) if values else None
            stats[f"n_{metric}"] = len(values)
        out[name] = stats
    return out
