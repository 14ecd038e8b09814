"""What people read after ``spl eval``: per-row CSV, summary JSON and Markdown, one figure per metric."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spl_sdk.metrics.evaluate import METRICS, empty_metrics

# the scale PIE-Bench's tables print each metric at, and which way is better
# why a metric can have no data at all
WHY_EMPTY = {"psnr": "mask", "lpips": "mask", "mse": "mask", "ssim": "mask", "clip_edited": "mask or prompt",
             "clip_whole": "prompt", "structure_distance": "row"}
SCALE = {"structure_distance": 1e3, "psnr": 1.0, "lpips": 1e3, "mse": 1e4, "ssim": 1e2,
         "clip_whole": 1.0, "clip_edited": 1.0}
LABEL = {"structure_distance": "Structure dist. ×10³ ↓", "psnr": "PSNR ↑", "lpips": "LPIPS ×10³ ↓",
         "mse": "MSE ×10⁴ ↓", "ssim": "SSIM ×10² ↑", "clip_whole": "CLIP whole ↑",
         "clip_edited": "CLIP edited ↑"}

Summary = dict[str, dict[str, Any]]  # edit type -> {metric: mean, n: ..., n_metric: ...}


def _publish(path: Path, data: bytes, force: bool) -> Path:
    """Write ``data`` as ``path`` atomically; an existing file is replaced only with ``force``."""
    from spl_sdk.imageio import atomic_write

    with atomic_write(path, force=force) as f:
        f.write(data)
    return path


def write_rows(rows: Sequence[dict[str, Any]], path: Path, force: bool = False) -> Path:
    """Per-row metrics as CSV (raw values, empty where undefined)."""
    columns = ["id", "edit_type", *METRICS, "error", "source", "edited", "target_prompt"]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and v != v else v) for k, v in row.items()})
    return _publish(path, text.getvalue().encode("utf-8"), force)


def _cell(value: float | None, metric: str) -> str:
    return "–" if value is None else f"{value * SCALE[metric]:.2f}"


def empty_note(summaries: dict[str, Summary]) -> str | None:
    """One sentence naming the metrics without any data and why, or None when all have some."""
    empty = empty_metrics(summaries)
    if not empty:
        return None
    causes = []
    if any(WHY_EMPTY[m].startswith("mask") for m in empty):
        causes.append("background and edited-region metrics need an edited-region mask (PIE-Bench's "
                      "mapping file, or an eval_mask column)")
    if any("prompt" in WHY_EMPTY[m] for m in empty):
        causes.append("CLIP scores need a target prompt (refine rows have none)")
    return (f"No data for {', '.join(LABEL[m] for m in empty)}: {'; '.join(causes)}. They are "
            f"left empty, and no figure is drawn for them.")


def markdown(summaries: dict[str, Summary], compare: bool, notes: Sequence[str] = ()) -> str:
    """One table per method (edit types x metrics); with ``compare``, one per metric (types x methods)."""
    lines = ["# spl eval", "",
             "PIE-Bench metrics; background metrics on the unedited region (mask inverted), means "
             "over the rows where a metric is defined.", ""]
    empty = empty_note(summaries)
    lines += [f"- {note}" for note in [*notes, *([empty] if empty else [])]]
    lines += [""] if notes or empty else []
    for method, summary in summaries.items():
        lines += [f"## {method}", "", "| edit type | n | " + " | ".join(LABEL[m] for m in METRICS) + " |",
                  "|---|---|" + "---|" * len(METRICS)]
        for etype, stats in summary.items():
            lines.append(f"| {etype} | {stats['n']} | "
                         + " | ".join(_cell(stats.get(m), m) for m in METRICS) + " |")
        lines.append("")
    if compare:
        methods = list(summaries)
        types = list(dict.fromkeys(t for s in summaries.values() for t in s))
        lines += ["## Side by side", ""]
        for metric in METRICS:
            lines += [f"### {LABEL[metric]}", "", "| edit type | " + " | ".join(methods) + " |",
                      "|---|" + "---|" * len(methods)]
            for etype in types:
                lines.append(f"| {etype} | " + " | ".join(
                    _cell(summaries[m].get(etype, {}).get(metric), metric) for m in methods) + " |")
            lines.append("")
    return "\n".join(lines)


def figures(summaries: dict[str, Summary], folder: Path, force: bool = False) -> list[Path]:
    """One bar chart per metric: edit types along x, one bar per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    methods = list(summaries)
    types = list(dict.fromkeys(t for s in summaries.values() for t in s))
    x = np.arange(len(types))
    width = 0.8 / max(1, len(methods))
    paths = []
    empty = set(empty_metrics(summaries))
    for metric in METRICS:
        if metric in empty:  # a blank chart would look like a result
            continue
        fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(types) * max(1, len(methods)) ** 0.5), 4))
        for i, method in enumerate(methods):
            values = [summaries[method].get(t, {}).get(metric) for t in types]
            heights = [np.nan if v is None else v * SCALE[metric] for v in values]
            ax.bar(x + (i - (len(methods) - 1) / 2) * width, heights, width, label=method)
        ax.set_xticks(x, types, rotation=30, ha="right")
        ax.set_ylabel(LABEL[metric])
        ax.set_title(LABEL[metric] + " per edit type")
        if len(methods) > 1:
            ax.legend()
        fig.tight_layout()
        image = io.BytesIO()
        fig.savefig(image, format="png", dpi=100)
        plt.close(fig)
        paths.append(_publish(folder / f"{metric}.png", image.getvalue(), force))
    return paths


def report_files(methods: Sequence[str], out_dir: Path) -> list[Path]:
    """Every file :func:`write_report` writes for ``methods`` into ``out_dir``."""
    return [*(out_dir / f"{m}.csv" for m in methods), out_dir / "summary.json", out_dir / "summary.md",
            *(out_dir / "figures" / f"{m}.png" for m in METRICS)]


def check_report(methods: Sequence[str], out_dir: Path, force: bool = False) -> None:
    """Refuse, before any scoring, a report that would replace existing files without ``force``."""
    from spl_sdk.errors import OutputExistsError
    from spl_sdk.imageio import check_writable

    taken = [p for p in report_files(methods, out_dir) if p.exists() or p.is_symlink()]
    if taken and not force:
        more = f" (and {len(taken) - 1} more report files)" if len(taken) > 1 else ""
        raise OutputExistsError(f"'{taken[0]}'{more} already exists; use --force to overwrite the "
                                f"report, or choose another -o folder.")
    check_writable(out_dir / "summary.md", force=True)  # a folder we cannot write: before the work


def write_report(per_method: dict[str, tuple[list[dict[str, Any]], Summary]], out_dir: Path,
                 compare: bool = False, force: bool = False, notes: Sequence[str] = ()) -> dict[str, Path]:
    """Write ``<method>.csv`` per method, ``summary.json``, ``summary.md`` and ``figures/``.

    Every file is written atomically; an existing one is replaced only with ``force``.
    """
    written = {}
    for stale in (out_dir / "figures" / f"{m}.png" for m in empty_metrics(
            {m: s for m, (_, s) in per_method.items()})):
        if force and stale.is_file():  # an older report's chart of a metric that is empty now
            stale.unlink()
    for method, (rows, _) in per_method.items():
        written[f"{method}.csv"] = write_rows(rows, out_dir / f"{method}.csv", force)
    summaries = {m: s for m, (_, s) in per_method.items()}
    written["summary.json"] = _publish(out_dir / "summary.json",
                                       json.dumps(summaries, indent=2, sort_keys=True).encode(), force)
    written["summary.md"] = _publish(out_dir / "summary.md", markdown(summaries, compare, notes).encode(), force)
    for path in figures(summaries, out_dir / "figures", force):
        written[f"figures/{path.name}"] = path
    return written
