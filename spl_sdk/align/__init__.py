"""Registration of an edit onto its source, for edits that moved (docs/align.md).

An instruction-edit model often returns its result shifted, slightly zoomed or
warped, or at another size. :func:`align` estimates a global affine warp (OpenCV's
ECC on structure maps) and a smooth residual (OpenCV's DIS optical flow, smoothed)
on a grid of at most ``ESTIMATE_SIDE`` pixels, then resamples the edit once, at
the source's full size, on the images' device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spl_sdk.errors import AlignmentError, ConfigError
from spl_sdk.lazy import no_grad, torch

if TYPE_CHECKING:
    import numpy as np

__all__ = ["MODES", "Alignment", "AlignmentError", "align", "describe"]

MODES = ("auto", "affine", "flow", "raft", "off")
# Below this correlation of evened structure maps the two images are not the same scene (recolored,
# blurred and moved edits of the bundled photos score 0.6 to 0.99, two of the photos at most 0.13).
MIN_CORRELATION = 0.3
FLAT = 1 / 255  # below this 99th percentile of luminance steps the source is flat: nothing to align on
MIN_COVERAGE = 0.5  # the aligned edit must cover at least half of the source
# Gains of correlation below these are noise: ``auto`` leaves such a step out. The flow fits the
# images locally, so it always gains a little: on aligned, recolored and blurred edits of the
# bundled photos at most 0.0008 (at 160 px), while a 2 px bend at 512 px gains 0.002 to 0.0045.
GAIN, GAIN_FLOW = 0.002, 0.0015
MAX_ZOOM, MAX_ROTATION = 1.5, 10.0  # a fitted warp beyond these (either axis, degrees) is no drift
MIN_SHIFT = 0.05  # px of the estimation grid: a smaller largest displacement is no warp at all


@dataclass
class Alignment:
    """The edit on the source's grid, where it covers the source, and what was estimated."""

    image: torch.Tensor  # (1, 3, H, W) in [-1, 1]
    coverage: torch.Tensor  # (1, 1, H, W) in [0, 1]: 1 where the un-warped edit covers the source
    info: dict[str, Any] = field(default_factory=dict)


def describe(info: dict[str, Any]) -> str:
    """The estimated warp in one line, as ``spl refine`` prints it."""
    if info.get("mode") in (None, "off"):
        return "alignment: off"
    return (f"alignment ({info['requested']}): applied {info['mode']}; zoom {info['zoom']:.4f}, shift "
            f"{info['shift_x']:+.2f}/{info['shift_y']:+.2f} px, rotation {info['rotation']:+.3f} deg, "
            f"residual up to {info['residual_px']:.2f} px, coverage {100 * info['coverage']:.1f} %")


def _to_numpy(image: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) float32 in [0, 1] at ``size`` (W, H), area-averaged when shrinking."""
    import cv2

    array = ((image[0].detach().float().cpu().permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1)
    if (array.shape[1], array.shape[0]) != size:
        array = cv2.resize(array, size, interpolation=cv2.INTER_AREA)
    return array


def _starts(src: tuple[int, int], edit: tuple[int, int], grid: tuple[int, int]) -> list[np.ndarray]:
    """Initial warps: the edit stretched onto the source, and, when the aspects differ, scaled evenly."""
    import numpy as np

    starts = [np.eye(2, 3, dtype=np.float32)]
    (h, w), (eh, ew), (gh, gw) = src, edit, grid
    if abs(math.log((ew / eh) / (w / h))) > 0.01:  # a model may have cropped rather than stretched
        for k in (max(ew / w, eh / h), min(ew / w, eh / h)):
            # source pixel x -> edit pixel k (x - W/2) + w/2 -> the stretched edit's pixel (times W/w)
            ax, ay = k * w / ew, k * h / eh
            starts.append(np.array([[ax, 0, gw / 2 * (1 - ax)], [0, ay, gh / 2 * (1 - ay)]], np.float32))
    return starts


def _refuse(why: str) -> AlignmentError:
    return AlignmentError(f"cannot align EDITED to SOURCE: {why}; check that EDITED is an edit of SOURCE, "
                          f"or refine it as it is with --align off (align='off').")


def align(source: torch.Tensor, edited: torch.Tensor, mode: str = "auto") -> Alignment:
    """Register ``edited`` (1, 3, h, w) onto ``source`` (1, 3, H, W), both in [-1, 1] (docs/align.md)."""
    from spl_sdk.align.structure import repeatable

    with repeatable():
        return _align(source, edited, mode)


@no_grad
def _align(source: torch.Tensor, edited: torch.Tensor, mode: str) -> Alignment:
    import cv2
    import numpy as np

    from spl_sdk.align import affine, flow, warp
    from spl_sdk.align.structure import ESTIMATE_SIDE, correlation, evened, gray, structure

    if mode not in MODES:
        raise ConfigError(f"align must be one of {', '.join(MODES)}, not {mode!r}.")
    size = tuple(source.shape[-2:])
    base = warp.resized(edited.to(source.device, torch.float32), size)  # the edit on the source's size
    ones = torch.ones_like(base[:, :1])
    info: dict[str, Any] = {"requested": mode, "mode": "off", "zoom": 1.0, "shift_x": 0.0, "shift_y": 0.0,
                            "rotation": 0.0, "residual_px": 0.0, "coverage": 1.0,
                            "edited_size": [int(edited.shape[-1]), int(edited.shape[-2])]}
    if mode == "off":
        return Alignment(base.clone() if base is edited else base, ones, info)

    k = min(1.0, ESTIMATE_SIDE / max(size))
    grid = (max(16, round(size[0] * k)), max(16, round(size[1] * k)))
    template_luma, moving_luma = (gray(_to_numpy(im, grid[::-1])) for im in (source, edited))
    template, moving = structure(template_luma), structure(moving_luma)
    full = np.ones(grid, np.float32)

    def score(coords: tuple[np.ndarray, np.ndarray] | np.ndarray, maps: tuple[np.ndarray, np.ndarray] = (
              template, moving)) -> tuple[float, float]:
        """Correlation on the covered pixels and the covered fraction, for a warp or a pixel map."""
        if isinstance(coords, tuple):
            moved = cv2.remap(maps[1], *coords, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            cover = cv2.remap(full, *coords, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        else:
            moved = affine.warp_map(maps[1], coords, grid[::-1])
            cover = affine.warp_map(full, coords, grid[::-1], cv2.BORDER_CONSTANT)
        return correlation(maps[0], moved, (cover > 0.999).astype(np.float32)), float(cover.mean())

    identity = np.eye(2, 3, dtype=np.float32)
    if float(np.percentile(np.abs(np.diff(template_luma, axis=1)), 99)) < FLAT:
        info.update(mode="none", reason="the source has no structure to align on")  # a flat image
        return Alignment(base.clone() if base is edited else base, ones, info)
    # ECC and the flow's gain work on the wide-blur structure maps (unbiased by the edit's blur);
    # whether the match improved, or is there at all, is judged on sharper evened maps
    judge = (evened(template_luma), evened(moving_luma))
    plain, _ = score(identity, judge)
    starts = _starts(size, tuple(edited.shape[-2:]), grid)
    fits = [w for w, start in ((affine.fit(template, moving, start), start) for start in starts)
            if _plausible(w, start)]
    scored = [(score(w, judge), w) for w in fits] or [((plain, 1.0), identity)]
    (best, cover), fitted = max(scored, key=lambda item: item[0][0])
    use_affine = mode != "auto" or (best > plain + GAIN and _largest_move(fitted, grid) > MIN_SHIFT)
    matrix, current, cover = (fitted, best, cover) if use_affine else (identity, plain, 1.0)

    residual = None
    if mode in ("auto", "flow", "raft"):
        moved_luma = affine.warp_map(moving_luma, matrix, grid[::-1])
        covered = affine.warp_map(full, matrix, grid[::-1], cv2.BORDER_CONSTANT)
        weight = np.minimum(template / (template.mean() + 1e-6), 2.0) * (covered > 0.999)
        candidate = flow.residual_flow(template_luma, moved_luma, weight,
                                       source.device if mode == "raft" else None)
        coords = _composed(matrix, candidate, grid)
        gain = score(coords)[0] - score(matrix)[0]
        keep = mode in ("flow", "raft") or (gain > GAIN_FLOW and float(np.abs(candidate).max()) > MIN_SHIFT)
        if keep:
            residual = candidate
            current, cover = score(coords, judge)
    if max(plain, current) < MIN_CORRELATION:
        raise _refuse(f"their structures do not match (correlation {max(plain, current):.2f}, below "
                      f"{MIN_CORRELATION}), so they look like different images")
    if cover < MIN_COVERAGE:
        raise _refuse(f"after alignment EDITED covers only {100 * cover:.0f} % of SOURCE (under half)")
    applied = "+".join(n for n, on in (("affine", use_affine), ("raft" if mode == "raft" else "flow",
                                                                 residual is not None)) if on)
    if not applied:  # nothing improves the match: the edit is returned exactly as it is
        info.update(mode="none", score=round(plain, 4), score_before=round(plain, 4))
        return Alignment(base.clone() if base is edited else base, ones, info)

    coords_full = warp.full_map(matrix, residual, size, grid, source.device)
    image, coverage = warp.sample(base, coords_full)
    image = warp.fill_uncovered(source.float(), image, coverage)
    info.update(mode=applied, coverage=round(float(coverage.mean()), 4), score=round(current, 4),
                score_before=round(plain, 4), **_summary(matrix, residual, size, grid))
    return Alignment(image, coverage, info)


def _composed(matrix: np.ndarray, residual: np.ndarray, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel maps of x -> matrix (x + residual(x)) on the estimation grid (for cv2.remap)."""
    import numpy as np

    ys, xs = np.mgrid[0:grid[0], 0:grid[1]].astype(np.float32)
    px, py = xs + residual[..., 0], ys + residual[..., 1]
    a = matrix.astype(np.float32)
    return (a[0, 0] * px + a[0, 1] * py + a[0, 2]).astype(np.float32), \
        (a[1, 0] * px + a[1, 1] * py + a[1, 2]).astype(np.float32)


def _plausible(matrix: np.ndarray, start: np.ndarray) -> bool:
    """Whether a fitted warp is a drift an edit model makes, not ECC fitting one photo onto another.

    Drifts are a few percent of zoom and a degree or two of rotation; two unrelated
    photos can still correlate once ECC turns one by 50 degrees and shrinks it.
    """
    import numpy as np

    a = matrix[:, :2].astype(np.float64) @ np.linalg.inv(start[:, :2].astype(np.float64))  # what ECC added
    scales = np.linalg.svd(a, compute_uv=False)
    rotation = math.degrees(math.atan2(a[1, 0] - a[0, 1], a[0, 0] + a[1, 1]))
    return bool(MAX_ZOOM ** -1 < scales.min() and scales.max() < MAX_ZOOM and abs(rotation) < MAX_ROTATION)


def _largest_move(matrix: np.ndarray, grid: tuple[int, int]) -> float:
    """Largest displacement (grid pixels) of the warp at the grid's corners."""
    import numpy as np

    h, w = grid
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], np.float64)
    return float(np.abs(corners @ matrix.T.astype(np.float64) - corners[:, :2]).max())


def _summary(matrix: np.ndarray, residual: np.ndarray | None, size: tuple[int, int],
             grid: tuple[int, int]) -> dict[str, float]:
    """Zoom, shift at the center (source pixels), rotation (degrees) and the largest residual (px)."""
    import numpy as np

    sy, sx = size[0] / grid[0], size[1] / grid[1]
    a = matrix.astype(np.float64)
    cx, cy = (grid[1] - 1) / 2, (grid[0] - 1) / 2
    # the content at source pixel x is at a x in the edit: shift = a(c) - c at the center c
    shift = a[:, :2] @ [cx, cy] + a[:, 2] - [cx, cy]
    zoom = math.sqrt(abs(np.linalg.det(a[:, :2])))
    rotation = math.degrees(math.atan2(a[1, 0] - a[0, 1], a[0, 0] + a[1, 1]))
    largest = 0.0
    if residual is not None:
        largest = float(np.hypot(residual[..., 0] * sx, residual[..., 1] * sy).max())
    return {"zoom": round(zoom, 5), "shift_x": round(float(shift[0]) * sx, 3),
            "shift_y": round(float(shift[1]) * sy, 3), "rotation": round(rotation, 4),
            "residual_px": round(largest, 3)}
