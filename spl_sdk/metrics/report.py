"""What people read after ``spl eval``: per-row CSV, summary JSON and Markdown, one figure per metric."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spl_sdk.metrics.evaluate import METRICS

# the scale PIE-Bench's tables print each metric at, and which way is better
SCALE = {"structure_distance": 1e3, "psnr": 1.0, "lpips": 1e3, "mse": 1e4, "ssim": 1e2,
         "clip_whole": 1.0, "clip_edited": 1.0}
LABEL = {"structure_distance": "Structure dist. ×10³ ↓", "psnr": "PSNR ↑", "lpips": "LPIPS ×10³ ↓",
         "mse": "MSE ×10⁴ ↓", "ssim": "SSIM ×10² ↑", "clip_whole": "CLIP whole ↑",
         "clip_edited": "CLIP edited ↑"}

Summary = dict[str, dict[str, Any]]  # edit type -> {metric: mean, n: ..., n_metric: ...}


def write_rows(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Per-row metrics as CSV (raw values, empty where undefined)."""
    columns = ["id", "edit_type", *METRICS, "error", "source", "edited", "target_prompt"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if isinstance(v, float) and v != v else v) for k, v in row.items()})
    return path


def _cell(value: float | None, metric: str) -> str:
    return "–" if value is None else f"{value * SCALE[metric]:.2f}"


def markdown(summaries: dict[str, Summary], compare: bool) -> str:
    """One table per method (edit types x metrics); with ``compare``, one per metric (types x methods)."""
    lines = ["# spl eval", "",
             "PIE-Bench metrics; background metrics on the unedited region (mask inverted), means "
             "over the rows where a metric is defined.", ""]
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


def figures(summaries: dict[str, Summary], folder: Path) -> list[Path]:
    """One bar chart per metric: edit types along x, one bar per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    methods = list(summaries)
    types = list(dict.fromkeys(t for s in summaries.values() for t in s))
    x = np.arange(len(types))
    width = 0.8 / max(1, len(methods))
    paths = []
    for metric in METRICS:
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
        path = folder / f"{metric}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def write_report(per_method: dict[str, tuple[list[dict[str, Any]], Summary]], out_dir: Path,
                 compare: bool = False) -> dict[str, Path]:
    """Write ``<method>.csv`` per method, ``summary.json``, ``summary.md`` and ``figures/``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for method, (rows, _) in per_method.items():
        written[f"{method}.csv"] = write_rows(rows, out_dir / f"{method}.csv")
    summaries = {m: s for m, (_, s) in per_method.items()}
    (out_dir / "summary.json").write_text(json.dumps(summaries, indent=2, sort_keys=True), encoding="utf-8")
    (out_dir / "summary.md").write_text(markdown(summaries, compare), encoding="utf-8")
    written["summary.json"], written["summary.md"] = out_dir / "summary.json", out_dir / "summary.md"
    for path in figures(summaries, out_dir / "figures"):
        written[f"figures/{path.name}"] = path
    return written
